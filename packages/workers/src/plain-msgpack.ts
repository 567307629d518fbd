// A walk over msgpack bytes that decodes nothing: it proves a payload is plain data before msgpackr
// sees it. msgpackr turns extension types into live objects (RegExp, Error, Set, Date, typed arrays,
// structured-clone references, records) and recurses once per nesting level, so a hostile file could
// build objects a checkpoint never holds or overflow the stack. After this walk neither can happen.

/** Deepest nesting a checkpoint payload may have; real ones stay under 10 (a sequential schedule adds 2 per level). */
export const MAX_MSGPACK_DEPTH = 64;

/**
 * Throws unless `bytes` is exactly one msgpack value made of nil, booleans, numbers, strings, binary,
 * arrays and maps with string keys (and msgpackr's `undefined`, fixext 0), nested at most `maxDepth`
 * deep. The message says what was found and at which byte offset. Iterative: any depth is safe.
 */
export function checkPlainMsgpack(bytes: Uint8Array, maxDepth = MAX_MSGPACK_DEPTH): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Items still to read in each open container; for a map, keys and values count separately, so
  // an even count left means a key comes next.
  const left: number[] = [];
  const isMap: boolean[] = [];
  let pos = 0;
  const need = (n: number, what: string): void => {
    if (pos + n > bytes.length) {
      throw new Error(`${what} at byte ${pos} needs ${n} bytes, only ${bytes.length - pos} remain`);
    }
  };
  const open = (items: number, map: boolean, at: number): void => {
    // Every item takes at least one byte: a larger count can never be satisfied.
    if (items > bytes.length - pos) {
      throw new Error(`${map ? "a map" : "an array"} at byte ${at} declares ${items} items, more than the bytes left`);
    }
    if (items === 0) return;
    if (left.length >= maxDepth) throw new Error(`nesting deeper than ${maxDepth} levels at byte ${at}`);
    left.push(items);
    isMap.push(map);
  };
  do {
    const top = left.length - 1;
    const expectsKey = top >= 0 && isMap[top]! && left[top]! % 2 === 0;
    if (top >= 0) left[top]!--;
    need(1, "a value");
    const at = pos;
    const b = bytes[pos++]!;
    const isString = (b >= 0xa0 && b <= 0xbf) || b === 0xd9 || b === 0xda || b === 0xdb;
    if (expectsKey && !isString) throw new Error(`a map key at byte ${at} is not a string (type byte 0x${hex(b)})`);
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, nil, false, true
    } else if (b <= 0x8f) open((b & 0x0f) * 2, true, at);
    else if (b <= 0x9f) open(b & 0x0f, false, at);
    else if (b <= 0xbf) skip(b & 0x1f);
    else if (b === 0xc4 || b === 0xd9) skip(lengthOf(1));
    else if (b === 0xc5 || b === 0xda) skip(lengthOf(2));
    else if (b === 0xc6 || b === 0xdb) skip(lengthOf(4));
    else if (b === 0xca || b === 0xce || b === 0xd2) skip(4);
    else if (b === 0xcb || b === 0xcf || b === 0xd3) skip(8);
    else if (b === 0xcc || b === 0xd0) skip(1);
    else if (b === 0xcd || b === 0xd1) skip(2);
    else if (b === 0xdc) open(lengthOf(2), false, at);
    else if (b === 0xdd) open(lengthOf(4), false, at);
    else if (b === 0xde) open(lengthOf(2) * 2, true, at);
    else if (b === 0xdf) open(lengthOf(4) * 2, true, at);
    else if (b === 0xd4 && bytes[pos] === 0x00)
      skip(2); // msgpackr's undefined: fixext 1, type 0
    else if (b === 0xc1) throw new Error(`byte ${at} holds 0xc1, which msgpack never uses`);
    else
      throw new Error(
        `byte ${at} starts an extension value (type byte 0x${hex(b)}); a checkpoint holds plain data only`,
      );
    while (left.length > 0 && left[left.length - 1] === 0) {
      left.pop();
      isMap.pop();
    }
  } while (left.length > 0);
  if (pos !== bytes.length) throw new Error(`${bytes.length - pos} bytes follow the payload's value at byte ${pos}`);

  function lengthOf(size: 1 | 2 | 4): number {
    need(size, "a length");
    const n = size === 1 ? view.getUint8(pos) : size === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += size;
    return n;
  }
  function skip(n: number): void {
    need(n, "a value");
    pos += n;
  }
}

const hex = (b: number): string => b.toString(16).padStart(2, "0");
