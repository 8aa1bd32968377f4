"use strict";
// The dictation page: microphone -> AudioWorklet (16 kHz int16) -> WebSocket; partial/final text back.
// The token comes from the URL fragment (#token=...), which browsers never send to a server.
(() => {
  const $ = (id) => document.getElementById(id);
  const status = (s) => { $("status").textContent = s; };
  let token = "";
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem("mailvoice-token", token);
    history.replaceState(null, "", location.pathname);
  } else {
    token = sessionStorage.getItem("mailvoice-token") || "";
  }
  if (!token) { $("token-row").hidden = false; }
  $("token").addEventListener("change", () => { token = $("token").value.trim(); connect(); });

  let ws = null, ctx = null, stream = null, node = null, recording = false;

  function send(obj) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); }

  function connect() {
    if (!token) { status("Enter the access token printed by `mailvoice serve`."); return; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    ws = new WebSocket(url, ["mailvoice.v1", "token." + token]);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => status("Connected. Press Record and speak.");
    ws.onclose = (e) => { status("Disconnected (" + (e.reason || e.code) + ")."); stopAudio(); ws = null; };
    ws.onmessage = (e) => handle(JSON.parse(e.data));
  }

  function handle(ev) {
    if (ev.type === "partial") {
      $("stable").textContent = ev.stable; $("unstable").textContent = ev.unstable;
    } else if (ev.type === "final") {
      $("stable").textContent = ""; $("unstable").textContent = "";
    } else if (ev.type === "draft") {
      $("text").value = ev.text;
      for (const a of ev.actions) {
        if (a === "send") doSend("send");
        else if (a === "save_draft") doSend("save_draft");
        else if (a === "cancel") { stopRecording(); $("text").value = ""; send({type: "edit", text: ""}); status("Cancelled."); }
      }
    } else if (ev.type === "status") {
      status(ev.degraded ? "Slowed down to keep up (compute/audio " + ev.ratio.toFixed(2) + ")." : "Recording.");
    } else if (ev.type === "sent") {
      status(ev.sent ? "Sent." : "Queued: the outbox will retry.");
    } else if (ev.type === "draft_saved") {
      status("Saved as a draft in " + ev.folder + ".");
    } else if (ev.type === "error") {
      status("Error: " + ev.message);
    } else if (ev.type === "stopped") {
      status("Stopped.");
    }
  }

  function recipients() { return $("to").value.split(",").map((s) => s.trim()).filter(Boolean); }

  function doSend(kind) {
    if (recording) stopRecording();
    send({type: kind, to: recipients(), subject: $("subject").value, text: $("text").value});
    status(kind === "send" ? "Sending..." : "Saving the draft...");
  }

  async function startRecording() {
    if (!ws) connect();
    stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true,
      noiseSuppression: true, autoGainControl: true}});
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/worklet.js");
    const src = ctx.createMediaStreamSource(stream);
    node = new AudioWorkletNode(ctx, "downsampler");
    node.port.onmessage = (e) => { if (ws && ws.readyState === WebSocket.OPEN && recording) ws.send(e.data); };
    src.connect(node);
    send({type: "start"});
    recording = true;
    $("record").setAttribute("aria-pressed", "true"); $("record").textContent = "Stop";
    status("Recording.");
  }

  function stopAudio() {
    recording = false;
    if (node) { node.port.onmessage = null; node.disconnect(); node = null; }
    if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
    if (ctx) { ctx.close(); ctx = null; }
    $("record").setAttribute("aria-pressed", "false"); $("record").textContent = "Record";
  }

  function stopRecording() { stopAudio(); send({type: "stop"}); }

  $("record").addEventListener("click", () => {
    if (recording) stopRecording();
    else startRecording().catch((err) => status("Microphone: " + err.message));
  });
  $("text").addEventListener("input", () => { send({type: "edit", text: $("text").value}); });
  $("send").addEventListener("click", () => doSend("send"));
  $("draft").addEventListener("click", () => doSend("save_draft"));
  connect();
})();
