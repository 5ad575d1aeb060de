// The demo's data set: short ship's-log entries in one distinctive, regular style, made
// up from a seed so that any fresh machine writes the same files. A model fine-tuned on
// them should pick up the "Day N. ..." rhythm that a random base model lacks.
import { Rng } from '../engine/rng';

const winds = ['calm', 'fresh from the west', 'strong from the north', 'light and warm', 'cold from the east'];
const skies = ['clear', 'grey', 'full of gulls', 'red at dusk', 'heavy with rain'];
const deeds = ['We mended the sail.', 'We caught three fish.', 'The cook made soup.', 'We saw a whale.',
  'We cleaned the deck.', 'The captain sang.', 'We counted the stars.', 'We fixed the rope.'];
const ends = ['All is well.', 'We sleep early.', 'Land is near.', 'The sea is kind.'];

export function shipLog(rng: Rng, day: number): string {
  const pick = <T>(a: T[]) => a[rng.int(a.length)];
  return `Day ${day}. The wind was ${pick(winds)}. The sky was ${pick(skies)}. ${pick(deeds)} ${pick(ends)}`;
}

/** `n` log entries from `seed`, one per line. */
export function shipLogs(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => shipLog(rng, 1 + (i % 40)));
}
