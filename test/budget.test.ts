// The video budget (src/ui/call/budget.ts): how many remote videos a page plays, from what decoding costs it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseVideoTiles, initialBudget, overloaded, VideoBudget, type LoadSample } from '../src/ui/call/budget.js';

const smooth = (n: number): LoadSample => ({
  intervalMs: 1000,
  videos: Array.from({ length: n }, () => ({ fps: 28, droppedPerSecond: 0, decodeMsPerSecond: 20 })),
  longTaskMs: 0,
  frozen: false,
});
const starving = (n: number): LoadSample => ({
  intervalMs: 1000,
  videos: Array.from({ length: n }, () => ({ fps: 3, droppedPerSecond: 20, decodeMsPerSecond: 40 })),
  longTaskMs: 400,
  frozen: false,
});

test('a device starts with a budget that fits it: fewer on a phone', () => {
  assert.equal(initialBudget({ cores: 2, small: false }), 9);
  assert.equal(initialBudget({ cores: 8, small: false }), 16);
  assert.equal(initialBudget({ cores: 8, small: true }), 4);
});

test('what counts as a page that cannot keep up', () => {
  assert.equal(overloaded(smooth(9), 2), undefined);
  assert.ok(overloaded({ ...smooth(3), frozen: true }, 2));
  assert.ok(overloaded({ ...smooth(3), longTaskMs: 300 }, 2));
  assert.ok(overloaded({ ...smooth(3), videos: smooth(3).videos.map((v) => ({ ...v, decodeMsPerSecond: 400 })) }, 2), 'decoding 1.2 s per second on 2 cores');
  assert.ok(overloaded({ ...starving(4), longTaskMs: 0 }, 2), 'most videos drop frames');
  assert.ok(overloaded({ ...smooth(3), sendingStarved: true }, 2), 'our own video lacks the CPU');
  assert.equal(overloaded({ ...smooth(0), sendingStarved: true }, 2), undefined, 'nothing to stop decoding');
  // A camera that is off sends no frames: not starving.
  assert.equal(overloaded({ ...smooth(2), videos: [{ fps: 0, droppedPerSecond: 0, decodeMsPerSecond: 0 }, ...smooth(2).videos] }, 2), undefined);
});

test('the budget drops after two bad seconds, by a quarter, and grows back one video at a time once the page has settled', () => {
  const b = new VideoBudget({ cores: 2, small: false });
  let now = 0;
  const tick = (s: LoadSample, wanted: number) => b.update(s, wanted, (now += 1000));
  assert.equal(tick(starving(9), 32), 9, 'one bad second is not a trend');
  assert.equal(tick(starving(9), 32), 7);
  assert.ok(b.reason);
  tick(starving(7), 32);
  assert.equal(tick(starving(7), 32), 6);
  tick(starving(6), 32);
  assert.equal(tick(starving(6), 32), 5);
  // Settled: no growth during the hold, then one more video every four good seconds.
  for (let i = 0; i < 7; i++) assert.equal(tick(smooth(5), 32), 5);
  let grown = 5;
  for (let i = 0; i < 8; i++) grown = tick(smooth(grown), 32);
  assert.equal(grown, 7);
  // Nothing left out: no growth.
  const full = new VideoBudget({ cores: 2, small: false });
  for (let i = 0; i < 20; i++) full.update(smooth(4), 4, i * 1000);
  assert.equal(full.limit, 9);
});

test('the person can ask for more or fewer; fewer stays a while', () => {
  const b = new VideoBudget({ cores: 2, small: false });
  assert.equal(b.adjust(2, 0, 20), 11);
  assert.equal(b.adjust(-5, 0, 20), 6);
  for (let i = 1; i <= 30; i++) b.update(smooth(6), 20, i * 1000);
  assert.equal(b.limit, 6, 'no growth for a minute after "Show fewer"');
  assert.equal(new VideoBudget({ cores: 2, small: true }).adjust(50, 0, 20), 9, 'a phone plays at most 9');
  assert.equal(b.adjust(-50, 0, 20), 1, 'at least one');
  // Counted from what plays: 5 people with room for 9, "fewer" plays 4.
  assert.equal(new VideoBudget({ cores: 2, small: false }).adjust(-1, 0, 5), 4);
});

test('who plays video: a shared screen, the pinned person, recent speakers, then grid order', () => {
  const tiles = [
    { id: 'a', screen: false, pinned: false, spokeAt: -Infinity },
    { id: 'b', screen: false, pinned: false, spokeAt: 100 },
    { id: 'c', screen: false, pinned: true, spokeAt: -Infinity },
    { id: 'd', screen: false, pinned: false, spokeAt: 300 },
    { id: 'e', screen: true, pinned: false, spokeAt: -Infinity },
    { id: 'f', screen: false, pinned: false, spokeAt: -Infinity },
  ];
  assert.deepEqual([...chooseVideoTiles(tiles, 4)], ['e', 'c', 'd', 'b']);
  assert.deepEqual([...chooseVideoTiles(tiles, 6)].sort(), ['a', 'b', 'c', 'd', 'e', 'f']);
  assert.deepEqual([...chooseVideoTiles(tiles, 5)].at(-1), 'a', 'then the first in grid order');
});

test('our own starving video drops the budget, then waits for the encoder to recover before dropping again, down to four', () => {
  const b = new VideoBudget({ cores: 2, small: false });
  const starved = { ...smooth(9), sendingStarved: true };
  let now = 0;
  b.update(starved, 9, (now += 1000));
  assert.equal(b.update(starved, 9, (now += 1000)), 7);
  for (let i = 0; i < 4; i++) assert.equal(b.update({ ...starved, videos: smooth(7).videos }, 9, (now += 1000)), 7, 'the encoder is given time');
  b.update({ ...starved, videos: smooth(7).videos }, 9, (now += 1000));
  assert.equal(b.update({ ...starved, videos: smooth(7).videos }, 9, (now += 1000)), 6, 'still starving after 5 s: one step more');
  // Down to four, no further: pausing the last few does not bring our own frame rate back.
  for (let i = 0; i < 30; i++) b.update({ ...starved, videos: smooth(b.limit).videos }, 9, (now += 1000));
  assert.equal(b.limit, 4);
});

test('a busy main thread while every video plays smoothly drops the budget only if it lasts', () => {
  const b = new VideoBudget({ cores: 2, small: false });
  let now = 0;
  const janky = { ...smooth(9), frozen: true };
  for (let i = 0; i < 4; i++) assert.equal(b.update(janky, 9, (now += 1000)), 9, 'a few slow tasks: the videos play on');
  assert.equal(b.update(janky, 9, (now += 1000)), 7, 'five seconds of it: fewer videos');
  const heavy = new VideoBudget({ cores: 2, small: false });
  const decodeHeavy = { ...smooth(9), videos: smooth(9).videos.map((v) => ({ ...v, decodeMsPerSecond: 150 })) };
  for (let i = 1; i <= 4; i++) assert.equal(heavy.update(decodeHeavy, 9, i * 1000), 9, 'smooth videos that cost much: not at once');
  assert.equal(heavy.update(decodeHeavy, 9, 5000), 7);
  const c = new VideoBudget({ cores: 2, small: false });
  const jankyAndStarving = { ...starving(9), longTaskMs: 0, frozen: true };
  c.update(jankyAndStarving, 9, 1000);
  assert.equal(c.update(jankyAndStarving, 9, 2000), 7, 'with videos starving, two seconds are enough');
});

test('however long the page stays overloaded, it pauses videos on its own down to four, no further: in a call of three it keeps both others', () => {
  const big = new VideoBudget({ cores: 2, small: false });
  let now = 0;
  for (let i = 0; i < 60; i++) big.update(starving(big.limit), 32, (now += 1000));
  assert.equal(big.limit, 4, 'a call of 33');
  assert.equal(big.adjust(-3, now, 32), 1, 'the person may still ask for fewer');
  const three = new VideoBudget({ cores: 2, small: false });
  for (let i = 0; i < 60; i++) three.update({ ...starving(2), frozen: true }, 2, (now += 1000));
  assert.ok(three.limit >= 2, `a call of three plays both others (limit ${three.limit})`);
});
