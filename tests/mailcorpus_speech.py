"""Realistic text mails for the speech path, built at test time: plain, HTML newsletters, threads, Outlook and Gmail
replies, forwards, signatures and legal footers.

Each builder returns ``SpeechCase(raw, must_say, must_not_say)``: raw RFC 5322 bytes, phrases the spoken text must
contain, and phrases (quoted history, hidden text, scripts, footers) it must never contain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP


@dataclass(frozen=True)
class SpeechCase:
    raw: bytes
    must_say: tuple[str, ...]
    must_not_say: tuple[str, ...] = ()


def _mail(
    sender: str, subject: str, text: str | None, html: str | None = None, msgid: str = "<x@example.com>", **headers: str
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = "Owner <owner@example.org>"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 25 Nov 2025 07:12:00 +0100"
    msg["Message-ID"] = msgid
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def plain_personal() -> SpeechCase:
    text = (
        "Hi Sam,\n\n"
        "The plumber comes on 2026-11-25 at 3:30 PM. He quoted $12.50 per meter, e.g. about €1,200 in total.\n"
        "Dr. Patel says the report is at https://files.example.com/reports/2025/q3.pdf?token=8f7a6b5c4d3e2f1a and\n"
        "you can write to billing.team@example.co.uk or call +1 (555) 123-4567.\n\n"
        "See you Mon, Nov 24 at 10am.\n\n"
        "Maria\n"
    )
    return SpeechCase(
        _mail("Maria Lopez <maria@example.net>", "Plumber on Tuesday", text),
        (
            "a link to example dot com",
            "billing team at example dot co dot uk",
            "twelve dollars and fifty cents",
            "three thirty PM",
            "November twenty-fifth, twenty twenty-six",
            "Doctor Patel",
            "for example",
            "five five five",
            "one thousand two hundred euros",
            "Monday, November twenty-fourth",
            "ten AM",
        ),
        ("token", "q3.pdf", "https"),
    )


def gmail_reply() -> SpeechCase:
    text = (
        "Sounds good, let's do Thursday.\n\n"
        "On Mon, Nov 24, 2025 at 3:30 PM Alice Smith <alice.smith@example.com>\n"
        "wrote:\n\n"
        "> Can we move the review to Thursday?\n"
        "> The secret quoted line.\n"
        ">\n"
        "> On Sun, Nov 23, 2025 at 9:00 AM Bob <bob@example.com> wrote:\n"
        ">> Older quoted history here.\n"
    )
    html = (
        '<div dir="ltr">Sounds good, let\'s do Thursday.</div><br><div class="gmail_quote">'
        '<div class="gmail_attr">On Mon, Nov 24, 2025 at 3:30 PM Alice Smith &lt;alice.smith@example.com&gt;'
        " wrote:<br></div><blockquote>Can we move the review to Thursday?</blockquote></div>"
    )
    return SpeechCase(
        _mail("Jo Kim <jo.kim@gmail.example>", "Re: Re: Review meeting", text, html),
        ("Sounds good, let's do Thursday.", "Subject: Review meeting."),
        ("secret quoted", "Older quoted", "wrote", "Re:"),
    )


def outlook_reply() -> SpeechCase:
    text = (
        "Hello team,\n\n"
        "Approved. Please send the PO (No. 4471) by EOD.\n\n"
        "Best regards,\n"
        "Smith, John\n"
        "Senior Procurement Manager | ACME Corp\n"
        "T: +44 20 7946 0958 | www.acme-corp.example.com\n\n"
        "________________________________\n"
        "From: Procurement Desk <desk@acme.example.com>\n"
        "Sent: Monday, November 24, 2025 4:12 PM\n"
        "To: Smith, John <john.smith@acme.example.com>\n"
        "Subject: PO approval needed\n\n"
        "Dear John, the quoted Outlook body must not be read.\n"
    )
    return SpeechCase(
        _mail('"Smith, John" <john.smith@acme.example.com>', "RE: PO approval needed", text),
        (
            "Message from John Smith.",
            "Approved.",
            "number four thousand four hundred seventy-one",
            "end of day",
            "Best regards, Smith, John.",
        ),
        ("quoted Outlook body", "Procurement Manager", "seven nine four six", "Sent:"),
    )


NEWSLETTER_HTML = """<!DOCTYPE html><html><head><title>Weekly digest</title>
<style>.x { color: red } body { font-family: sans-serif }</style>
<script>document.write('tracking script text'); fetch('https://evil.example.com/beacon');</script>
</head><body>
<span style="display:none !important; mso-hide:all">Hidden preheader text you never see</span>
<div style="font-size:0px">zero size hidden text</div>
<p><a href="https://news.example.com/view?id=998877665544">View this email in your browser</a></p>
<img src="https://tracker.example.com/open.gif?u=123456789abcdef" width="1" height="1" alt="">
<h1>Your weekly digest</h1>
<p>Our spring sale ends on 2026-03-31: everything is 25% off, shipping from $4.99.</p>
<ul><li>New hiking boots</li><li>Rain jackets for kids</li></ul>
<p>Read the full story at <a href="https://blog.example.com/2026/03/spring-sale?utm_source=newsletter&amp;utm_medium=email">
https://blog.example.com/2026/03/spring-sale?utm_source=newsletter&amp;utm_medium=email</a>.</p>
<div hidden>hidden attribute text</div>
<p aria-hidden="true">aria hidden text</p>
<template>template text</template>
<p style="color:#999">You are receiving this email because you signed up at shop.example.com.
<a href="https://shop.example.com/unsubscribe?u=abcdef0123456789">Unsubscribe</a></p>
<p>&copy; 2026 Example Shop, 1 Main Street, Springfield</p>
</body></html>"""


def html_newsletter() -> SpeechCase:
    raw = _mail(
        "Example Shop <news@shop.example.com>",
        "Spring sale: 25% off",
        None,
        NEWSLETTER_HTML,
        List_Id="<news.shop.example.com>",
        List_Unsubscribe="<https://shop.example.com/u/1>",
    )
    return SpeechCase(
        raw,
        (
            "Your weekly digest.",
            "March thirty-first, twenty twenty-six",
            "twenty-five percent off",
            "four dollars and ninety-nine cents",
            "New hiking boots.",
            "a link to example dot com",
        ),
        (
            "tracking script",
            "Hidden preheader",
            "zero size",
            "hidden attribute",
            "aria hidden",
            "template text",
            "View this email",
            "signed up",
            "Springfield",
            "color",
            "font-family",
            "utm",
        ),
    )


def text_newsletter() -> SpeechCase:
    text = (
        "[image: Example Weekly]\n\n"
        "View this email in your browser <https://mailchi.example.com/v/123abc456def>\n\n"
        "THIS WEEK\n"
        "- Product launch recap <https://blog.example.com/launch>\n"
        "- Hiring: 3 new roles <https://jobs.example.com/?ref=nl&id=77>\n"
        "* Webinar on 12/02/2026 at 14:00 [https://events.example.com/w/9]\n\n"
        "Questions? Write to hello@example.com or visit example.com/help.\n\n"
        "You received this email because you subscribed. To unsubscribe click https://example.com/u/xyz\n"
    )
    html = "<p>THIS WEEK</p><ul><li>Product launch recap</li></ul>"
    return SpeechCase(
        _mail("Example Weekly <weekly@example.com>", "This week at Example", text, html),
        (
            "THIS WEEK.",
            "Product launch recap (a link to example dot com).",
            "three new roles",
            "December second, twenty twenty-six",
            "two PM",
            "hello at example dot com",
            "a link to example dot com",
        ),
        ("image", "View this email", "subscribed", "xyz", "ref=nl"),
    )


def gmail_forward() -> SpeechCase:
    text = (
        "FYI, see below.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Travel Desk <travel@example.com>\n"
        "Date: Mon, Nov 24, 2025 at 8:15 AM\n"
        "Subject: Your booking LH1234\n"
        "To: <owner@example.org>\n\n"
        "Your flight departs 2025-12-03 at 06:45 from gate B22. Booking reference 7XQ4PL2ZK9M3TR.\n"
    )
    return SpeechCase(
        _mail("Kim Lee <kim@example.org>", "Fwd: Your booking", text),
        (
            "F Y I, see below.",
            "Forwarded message from Travel Desk, about Your booking",
            "December third, twenty twenty-five",
            "six forty-five AM",
            "a reference code",
        ),
        ("To:", "owner at", "7XQ4"),
    )


def mobile_with_footer() -> SpeechCase:
    text = (
        "Running 10 min late, start without me!\n\n"
        "Sent from my iPhone\n\n"
        "CONFIDENTIALITY NOTICE: This message is for the named recipient only. If you are not the intended "
        "recipient, delete it.\n"
    )
    return SpeechCase(
        _mail("pat.o.brien@example.com", "late", text),
        ("Message from pat o brien at example dot com.", "ten min late"),
        ("iPhone", "CONFIDENTIALITY", "intended recipient"),
    )


def legal_footer_plain() -> SpeechCase:
    text = (
        "Dear Ms. Novak,\n\n"
        "Please find the signed contract attached. The fee of USD 2,500 is due within 30 days, i.e. by Jan 15.\n\n"
        "Kind regards\n"
        "Henrik Berg\n"
        "Berg & Partners Ltd.\n"
        "http://www.berg-partners.example.com\n\n"
        "This e-mail and any attachments are confidential and may be privileged. If you have received it in error "
        "please notify the sender at legal@berg-partners.example.com.\n"
    )
    return SpeechCase(
        _mail("Henrik Berg <henrik@berg-partners.example.com>", "Contract", text),
        (
            "Dear Miz Novak,",
            "two thousand five hundred dollars",
            "thirty days",
            "that is,",
            "January fifteenth",
            "Kind regards. Henrik Berg.",
        ),
        ("confidential", "privileged", "Partners Limited", "legal"),
    )


def deep_thread() -> SpeechCase:
    text = (
        "Agreed with Lena, ship it on Friday.\n\n"
        "-----Original Message-----\n"
        "From: Lena <lena@example.com>\n"
        "Sent: Tuesday, November 25, 2025 9:01 AM\n"
        "Subject: RE: release\n\n"
        "I think we should wait for the quoted-old fix.\n"
        "> > even older text\n"
    )
    return SpeechCase(
        _mail("Omar <omar@example.com>", "RE: FW: release", text),
        ("Agreed with Lena, ship it on Friday.", "Subject: release."),
        ("quoted-old", "even older", "Original"),
    )


def links_everywhere() -> SpeechCase:
    text = (
        "Links: [the doc](https://docs.example.com/d/1AbCdEfGhIjKlMnOpQrStUvWxYz/edit), the router at "
        "http://192.168.1.1/admin, ftp://files.example.org/pub/x.tar.gz, and mailto:someone@example.com.\n"
        "Also <https://very.long.tracking.example.com/c/eJyNkMtOwzAQRX8lysrLbaJxJBfZPxLq>.\n"
    )
    return SpeechCase(
        _mail("Tom <tom@example.com>", "links", text),
        ("the doc", "a link to a numeric address", "a link to example dot org", "someone at example dot com"),
        ("1AbCd", "admin", "tar", "mailto", "eJy"),
    )


CASES: dict[str, Callable[[], SpeechCase]] = {
    "plain_personal": plain_personal,
    "gmail_reply": gmail_reply,
    "outlook_reply": outlook_reply,
    "html_newsletter": html_newsletter,
    "text_newsletter": text_newsletter,
    "gmail_forward": gmail_forward,
    "mobile_with_footer": mobile_with_footer,
    "legal_footer_plain": legal_footer_plain,
    "deep_thread": deep_thread,
    "links_everywhere": links_everywhere,
}
