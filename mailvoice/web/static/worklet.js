// Runs in the audio thread: mono float32 at the context rate (44.1 or 48 kHz) -> 16 kHz int16, 100 ms per message.
// The rate ratio need not be an integer: a box filter over each output period (anti-aliasing) with a fractional
// read position.
class Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000;
    this.pos = 0;          // fractional read position into `pending`
    this.pending = new Float32Array(0);
    this.out = new Int16Array(1600);
    this.n = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true;
    const ch = input[0];
    const buf = new Float32Array(this.pending.length + ch.length);
    buf.set(this.pending); buf.set(ch, this.pending.length);
    const step = this.step;
    let pos = this.pos;
    while (pos + step <= buf.length) {
      const a = Math.floor(pos), b = Math.floor(pos + step);
      let sum = 0;
      for (let i = a; i < b; i++) sum += buf[i];
      const v = sum / Math.max(1, b - a);
      this.out[this.n++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
      if (this.n === this.out.length) {
        this.port.postMessage(this.out.buffer.slice(0));
        this.n = 0;
      }
      pos += step;
    }
    const keep = Math.floor(pos);
    this.pending = buf.slice(keep);
    this.pos = pos - keep;
    return true;
  }
}
registerProcessor("downsampler", Downsampler);
