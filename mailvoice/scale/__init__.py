"""Scale-out on Celery: the scheduler only enqueues, any number of workers consume (see deploy/README.md).

    scheduler --poll(account)--> mail queue --> worker: lease the mailbox, take new mail in as sealed work
                                                items (+ ledger 'queued'), acknowledge at the source,
                                                enqueue process(work_id)
              --send()---------> mail queue --> worker: lease the outbox, send what is due
              --summary(a, slot)-> tts queue --> worker: speak the summary, record it once per slot
              --sweep()--------> mail queue --> worker: enqueue queued items whose task was lost
    process(work_id) ----------> asr queue  --> worker: the Pipeline's stages on the stored item, one commit

Only ids and account names travel through the broker: mail, audio and transcripts stay sealed in the store.
"""
