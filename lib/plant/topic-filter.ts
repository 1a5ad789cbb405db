/**
 * MQTT topic filters (MQTT 3.1.1 §4.7): both plant buses dispatch received messages to handlers by matching
 * the topic against each handler's filter, so one connection can hold overlapping subscriptions.
 */
import { OtaError } from '../errors';

/** Refuses what a broker would refuse: empty, NUL, "#" not alone as the last level, "+" not alone in its level. */
export function checkTopicFilter(filter: string): string {
  const levels = typeof filter === 'string' ? filter.split('/') : [];
  const bad =
    typeof filter !== 'string' ||
    filter.length === 0 ||
    filter.includes('\u0000') ||
    levels.some((level, i) => (level.includes('#') && (level !== '#' || i !== levels.length - 1)) || (level.includes('+') && level !== '+'));
  if (bad) throw new OtaError('PLANT_BAD_ID', `not a valid MQTT topic filter: ${JSON.stringify(filter)}`);
  return filter;
}

/** Refuses topic names a client may not publish to: empty, wildcards, NUL. */
export function checkTopicName(topic: string): string {
  if (typeof topic !== 'string' || topic.length === 0 || /[+#]/.test(topic) || topic.includes('\u0000')) {
    throw new OtaError('PLANT_BAD_ID', `not a valid MQTT topic to publish to: ${JSON.stringify(topic)}`);
  }
  return topic;
}

/**
 * True when `topic` matches `filter`: "+" is exactly one level (empty included), "#" the parent level and
 * everything below it; wildcards in the first level never match topics starting with "$" (§4.7.2).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
