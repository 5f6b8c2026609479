// The transcript view's data: any JSON response shape to speaker turns with their words, and the
// downloads. No DOM here.

// verbose_json (with speaker_segments when diarized, words when asked for), diarized_json, or json/text.
// Turn: { speaker: string|null, start: number|null, end: number|null, text,
//         words: [{index, word, start, end, probability}] }
export function buildTurns(data) {
  let index = 0;
  const word = (w) => ({ index: index++, word: w.word, start: w.start, end: w.end, probability: w.probability });
  if (Array.isArray(data.speaker_segments)) {
    return data.speaker_segments.map((t) => ({
      speaker: t.speaker_id, start: t.start, end: t.end, text: t.text.trim(), words: (t.words || []).map(word),
    }));
  }
  if (Array.isArray(data.segments)) {
    const words = Array.isArray(data.words) ? data.words : [];
    let next = 0;
    return data.segments.map((s) => {
      // a word belongs to the segment it starts in (the last segment takes any left over)
      const own = [];
      while (next < words.length && (words[next].start < s.end || s === data.segments[data.segments.length - 1])) {
        own.push(word(words[next++]));
      }
      return { speaker: s.speaker || s.speaker_id || null, start: s.start, end: s.end, text: s.text.trim(), words: own };
    });
  }
  return [{ speaker: null, start: null, end: null, text: (data.text || "").trim(), words: [] }];
}

// The word being spoken at `t` seconds: the last one started by then, while it lasts (or up to the next).
export function wordAt(words, t) {
  let lo = 0;
  let hi = words.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].start <= t + 1e-3) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return null;
  const w = words[found];
  return t <= w.end + 0.25 ? w.index : null;
}

function pad(n, width) {
  return String(n).padStart(width, "0");
}

// Whole milliseconds first, as the server does, so that cues never drift by rounding.
function stamp(seconds, sep) {
  const ms = Math.round(seconds * 1000);
  return `${pad(Math.floor(ms / 3600000), 2)}:${pad(Math.floor(ms / 60000) % 60, 2)}:` +
    `${pad(Math.floor(ms / 1000) % 60, 2)}${sep}${pad(ms % 1000, 3)}`;
}

export function clock(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const mm = pad(Math.floor(s / 60) % 60, 2);
  return h ? `${h}:${mm}:${pad(s % 60, 2)}` : `${Math.floor(s / 60)}:${pad(s % 60, 2)}`;
}

export function formatTxt(turns, text) {
  if (!turns.some((t) => t.speaker)) return `${(text || turns.map((t) => t.text).join(" ")).trim()}\n`;
  return turns.map((t) => `${t.speaker}: ${t.text}`).join("\n") + "\n";
}

export function formatSrt(turns) {
  return turns
    .filter((t) => t.start !== null)
    .map((t, i) => `${i + 1}\n${stamp(t.start, ",")} --> ${stamp(t.end, ",")}\n` +
      `${t.speaker ? `${t.speaker}: ` : ""}${t.text}\n`)
    .join("\n");
}

// WebVTT cue text is markup: &, < and > are escaped.
function vttEscape(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function formatVtt(turns) {
  const cues = turns
    .filter((t) => t.start !== null)
    .map((t) => `${stamp(t.start, ".")} --> ${stamp(t.end, ".")}\n` +
      `${t.speaker ? `<v ${vttEscape(t.speaker)}>` : ""}${vttEscape(t.text)}\n`);
  return ["WEBVTT\n", ...cues].join("\n");
}
