// Connection quality from WebRTC statistics (W3C webrtc-stats), as three levels people can read:
// good, fair, poor. What we send is judged by what the far end reports back about it
// (remote-inbound-rtp, from its RTCP receiver reports); what we receive, by our own inbound-rtp
// counters between two samples.

export const LEVELS = ["good", "fair", "poor"];

// Thresholds (issue 3): poor beyond 10 % loss or 500 ms round trip, fair beyond 2 % or 250 ms.
const POOR_LOSS = 0.1;
const FAIR_LOSS = 0.02;
const POOR_RTT = 0.5;
const FAIR_RTT = 0.25;
// Jitter and dropped frames only matter for what we receive; these bounds are ours: jitter past
// a typical jitter buffer (100 ms) is audible, past 250 ms speech breaks up; a third of the
// frames dropped is a visibly stuttering picture.
const FAIR_JITTER = 0.1;
const POOR_JITTER = 0.25;
const FAIR_DROPPED = 0.1;
const POOR_DROPPED = 0.3;

/** The worse of two levels (null counts as unknown and loses to anything). */
export function worse(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  return LEVELS.indexOf(a) >= LEVELS.indexOf(b) ? a : b;
}

/** Level from a loss fraction (0..1) and a round-trip time in seconds (either may be null). */
export function classify(loss, rtt) {
  if ((loss ?? 0) > POOR_LOSS || (rtt ?? 0) > POOR_RTT) return "poor";
  if ((loss ?? 0) > FAIR_LOSS || (rtt ?? 0) > FAIR_RTT) return "fair";
  return "good";
}

/** What the far end says about the streams we send: worst fractionLost and roundTripTime. */
export async function sendQuality(pc) {
  const report = await pc.getStats();
  let level = null;
  const detail = { loss: null, rtt: null };
  for (const s of report.values()) {
    if (s.type !== "remote-inbound-rtp") continue;
    const loss = typeof s.fractionLost === "number" ? s.fractionLost : null;
    const rtt = typeof s.roundTripTime === "number" ? s.roundTripTime : null;
    detail.loss = Math.max(detail.loss ?? 0, loss ?? 0);
    detail.rtt = Math.max(detail.rtt ?? 0, rtt ?? 0);
    level = worse(level, classify(loss, rtt));
  }
  return { level, ...detail };
}

/** Round-trip time (s) of the candidate pair in use, from ICE consent checks; null if unknown. */
function selectedPairRtt(report) {
  for (const s of report.values()) {
    if (s.type !== "transport" || !s.selectedCandidatePairId) continue;
    const pair = report.get(s.selectedCandidatePairId);
    if (pair && typeof pair.currentRoundTripTime === "number") return pair.currentRoundTripTime;
  }
  return null;
}

/**
 * Quality of what a receiving connection gets, from the change since the previous sample
 * (`previous` maps inbound-rtp id → counters; it is updated in place).
 */
export async function receiveQuality(pc, previous) {
  const report = await pc.getStats();
  let lost = 0;
  let received = 0;
  let jitter = 0;
  let dropped = 0;
  let decoded = 0;
  const rtt = selectedPairRtt(report);
  let seen = false;
  for (const s of report.values()) {
    if (s.type !== "inbound-rtp") continue;
    seen = true;
    const before = previous.get(s.id) || { packetsLost: 0, packetsReceived: 0, framesDropped: 0, framesReceived: 0 };
    const now = {
      packetsLost: s.packetsLost ?? 0,
      packetsReceived: s.packetsReceived ?? 0,
      framesDropped: s.framesDropped ?? 0,
      framesReceived: s.framesReceived ?? 0,
    };
    previous.set(s.id, now);
    lost += Math.max(0, now.packetsLost - before.packetsLost);
    received += Math.max(0, now.packetsReceived - before.packetsReceived);
    dropped += Math.max(0, now.framesDropped - before.framesDropped);
    decoded += Math.max(0, now.framesReceived - before.framesReceived);
    if (typeof s.jitter === "number") jitter = Math.max(jitter, s.jitter);
  }
  if (!seen || received + lost === 0) return { level: null, loss: null, rtt, jitter: null };
  const loss = lost / (received + lost);
  let level = classify(loss, rtt);
  if (jitter > POOR_JITTER) level = worse(level, "poor");
  else if (jitter > FAIR_JITTER) level = worse(level, "fair");
  if (decoded > 0) {
    const share = dropped / decoded;
    if (share > POOR_DROPPED) level = worse(level, "poor");
    else if (share > FAIR_DROPPED) level = worse(level, "fair");
  }
  return { level, loss, rtt, jitter };
}
