/**
 * Random number generation. `Generator` is a sequential stream (xoshiro128**, seeded through
 * splitmix32); `CounterGenerator` is counter-based: each number is a pure function of
 * (seed, step, sample index, stream, position), so a sample gets the same dropout mask whichever
 * worker processes it and whatever the batch is split into. Its whole state is the seed.
 */
function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [state, (z ^ (z >>> 16)) >>> 0];
}

export interface GeneratorState {
  seed: number;
  s: [number, number, number, number];
  spare: number | null;
}

export class Generator {
  private s = new Uint32Array(4);
  private seedValue = 0;
  private spare: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    if (!Number.isSafeInteger(seed)) throw new Error(`manualSeed: seed must be an integer, got ${seed}`);
    this.seedValue = seed;
    let st = (seed ^ Math.floor(seed / 2 ** 32)) | 0;
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(st);
      st = next;
      this.s[i] = out;
    }
    this.spare = null;
    return this;
  }

  initialSeed(): number {
    return this.seedValue;
  }

  /** Next 32 random bits (xoshiro128**). */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextUint32() >>> 5,
      lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [low, high). */
  integer(low: number, high: number): number {
    return low + Math.floor(this.random() * (high - low));
  }

  getState(): GeneratorState {
    return { seed: this.seedValue, s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!], spare: this.spare };
  }

  setState(state: GeneratorState): void {
    this.seedValue = state.seed;
    this.s.set(state.s);
    this.spare = state.spare;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  return Math.imul(h, 0x1b873593) ^ 0xe6546b64;
}

function finalize(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Counter-based generator: `uniform(step, sample, stream, k)` is a pure function of its arguments. */
export class CounterGenerator {
  constructor(readonly seed: number) {}

  uint32(step: number, sample: number, stream: number, k: number): number {
    let h = mix(0x2545f491, this.seed | 0);
    h = mix(h, Math.floor(this.seed / 2 ** 32) | 0);
    h = mix(h, step | 0);
    h = mix(h, sample | 0);
    h = mix(h, stream | 0);
    h = mix(h, k | 0);
    return finalize(h);
  }

  /** Uniform in [0, 1) (32 bits). */
  uniform(step: number, sample: number, stream: number, k: number): number {
    return this.uint32(step, sample, stream, k) / 4294967296;
  }
}

/**
 * mulberry32: a small seeded stream of floats in [0, 1) (32 bits each) for shuffles and test data,
 * where the order must be the same on every machine and in every version. Tensors draw from
 * `Generator` instead.
 * @example const rand = mulberry32(42); rand(); // 0.6011037519201636
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const defaultGenerator = new Generator(0);

/** Seeds the default generator, which every random op uses unless given its own. */
export function manualSeed(seed: number): Generator {
  return defaultGenerator.manualSeed(seed);
}

/**
 * Per-sample randomness context set by a trainer for one step: dropout then draws from
 * `generator` keyed by (step, firstSample + row, stream), where `stream` counts the random ops
 * called during this forward pass.
 */
export interface SampleContext {
  generator: CounterGenerator;
  step: number;
  firstSample: number;
  stream: number;
}

let sampleContext: SampleContext | null = null;

export function setSampleContext(ctx: { seed: number; step: number; firstSample: number } | null): void {
  sampleContext =
    ctx === null
      ? null
      : { generator: new CounterGenerator(ctx.seed), step: ctx.step, firstSample: ctx.firstSample, stream: 0 };
}

export function getSampleContext(): SampleContext | null {
  return sampleContext;
}
