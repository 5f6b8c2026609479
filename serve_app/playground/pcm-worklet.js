// Microphone audio to 16 kHz mono PCM16 for the realtime WebSocket (input_audio_format=pcm_s16le_16000).
// Runs on the audio thread: a context at 16 kHz (the page asks for one) passes through; any other rate
// (often 48 kHz) is averaged down to 16 kHz with a box filter. Posted in 100 ms chunks.
const OUT_RATE = 16000;
const CHUNK = OUT_RATE / 10;

class PCM16Processor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample (may be fractional)
    this.pos = 0;
    this.sum = 0;
    this.count = 0;
    this.out = new Int16Array(CHUNK);
    this.n = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let v = 0;
      for (const ch of channels) v += ch[i];
      this.sum += v / channels.length;
      this.count += 1;
      this.pos += 1;
      if (this.pos >= this.step) {
        this.pos -= this.step;
        const s = Math.max(-1, Math.min(1, this.sum / this.count));
        this.out[this.n++] = s < 0 ? s * 32768 : s * 32767;
        this.sum = 0;
        this.count = 0;
        if (this.n === CHUNK) {
          this.port.postMessage(this.out.buffer, [this.out.buffer]);
          this.out = new Int16Array(CHUNK);
          this.n = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16", PCM16Processor);
