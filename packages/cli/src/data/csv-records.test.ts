import { describe, expect, it } from "vitest";
import { CsvTokenizer, MAX_FIELD_CHARS, type CsvRecord } from "./csv-records.js";
import { parseCsvChunks } from "./csv.js";

interface Token {
  text: string;
  line: number;
}

function tokenize(chunks: string[]): { records: CsvRecord[]; fields: Token[][] } {
  const records: CsvRecord[] = [];
  const fields: Token[][] = [];
  let current: Token[] = [];
  const tokenizer = new CsvTokenizer("t.csv", {
    field: (text, index, line) => {
      expect(index).toBe(current.length);
      current.push({ text, line });
    },
    endRecord: (count, line) => {
      expect(count).toBe(current.length);
      records.push({ fields: current.map((f) => f.text), line });
      fields.push(current);
      current = [];
    },
  });
  for (const chunk of chunks) tokenizer.write(chunk);
  tokenizer.end();
  return { records, fields };
}

/** `text` cut into pieces of `size` characters. */
const piecesOf = (text: string, size: number) =>
  Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size));

/** Every way to cut `text` once, and into pieces of 1..7 characters. */
function chunkings(text: string): string[][] {
  const cuts = Array.from({ length: text.length + 1 }, (_, i) => [text.slice(0, i), text.slice(i)]);
  return [...cuts, ...[1, 2, 3, 5, 7].map((n) => piecesOf(text, n))];
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected an error");
}

// Quoted commas, doubled quotes and line breaks, CRLF, a lone CR, blank lines, blanks before a
// quote and after a closing one, an empty last field and no final line end.
const TRICKY = 'h1, "h,2",h3\r\n"a""b","x\r\ny\nz",3\r\n\r\n\n 1 ,  "2" ,\r4,5,6\n"",,"\n"';

describe("CsvTokenizer", () => {
  it("finds each field and the line it starts on", () => {
    const { fields } = tokenize([TRICKY]);
    expect(fields).toEqual([
      [
        { text: "h1", line: 1 },
        { text: "h,2", line: 1 },
        { text: "h3", line: 1 },
      ],
      [
        { text: 'a"b', line: 2 },
        { text: "x\r\ny\nz", line: 2 },
        { text: "3", line: 4 },
      ],
      [
        { text: " 1 ", line: 7 },
        { text: "2", line: 7 },
        { text: "", line: 7 },
      ],
      [
        { text: "4", line: 8 },
        { text: "5", line: 8 },
        { text: "6", line: 8 },
      ],
      [
        { text: "", line: 9 },
        { text: "", line: 9 },
        { text: "\n", line: 9 },
      ],
    ]);
  });

  it("gives the same fields and lines however the text is cut into chunks", () => {
    const whole = tokenize([TRICKY]).fields;
    for (const chunks of chunkings(TRICKY)) expect(tokenize(chunks).fields, JSON.stringify(chunks)).toEqual(whole);
  });

  it("reports the same error position however the text is cut", () => {
    const text = 'a,b\r\n"multi\r\nline",2\r\n3,"4"x\r\n';
    const expected = "csv: t.csv line 4, column 2: text after the closing quote of a field";
    for (const chunks of chunkings(text)) expect(messageOf(() => tokenize(chunks))).toBe(expected);
    const open = 'a,b\r\n1,2\r\n3,"4\r\n5,6\r\n';
    for (const chunks of chunkings(open)) {
      expect(messageOf(() => tokenize(chunks))).toBe("csv: t.csv line 3: a quoted field is never closed");
    }
  });

  it("refuses a field longer than MAX_FIELD_CHARS, even one spread over many chunks", () => {
    const long = `a,b\n1,"${"9".repeat(MAX_FIELD_CHARS + 1)}"\n`;
    const expected = `csv: t.csv line 2, column 2: a field longer than ${MAX_FIELD_CHARS} characters`;
    expect(messageOf(() => tokenize([long]))).toBe(expected);
    expect(messageOf(() => tokenize(piecesOf(long, 1000)))).toBe(expected);
    expect(tokenize([`a\n"${"9".repeat(MAX_FIELD_CHARS)}"`]).records[1]?.fields[0]?.length).toBe(MAX_FIELD_CHARS);
  });
});

describe("parseCsvChunks", () => {
  it("strips a BOM only at the start and reads the same data set from any chunking", () => {
    const text = '\uFEFFx,"y"\r\n1.5,0\r\n"2\r\n",1\r\n-3,2';
    const whole = parseCsvChunks([text], "b.csv", { target: "y" });
    expect([Array.from(whole.x), Array.from(whole.y), Array.from(whole.lineNumbers ?? [])]).toEqual([
      [1.5, 2, -3],
      [0, 1, 2],
      [2, 3, 5],
    ]);
    for (const chunks of chunkings(text)) {
      const ds = parseCsvChunks(chunks, "b.csv", { target: "y" });
      expect([Array.from(ds.x), Array.from(ds.y), Array.from(ds.lineNumbers ?? [])]).toEqual([
        [1.5, 2, -3],
        [0, 1, 2],
        [2, 3, 5],
      ]);
    }
  });

  it("names the line and column of a bad cell after a multi-line quoted field, however the text is cut", () => {
    const text = 'x,note,y\r\n1,"7\r\n",0\r\n2,3,1\r\n4,5e,0\r\n';
    const expected = 'csv: c.csv line 5, column 2 ("note"): not a decimal number';
    for (const chunks of chunkings(text)) {
      expect(messageOf(() => parseCsvChunks(chunks, "c.csv", { target: "y" }))).toContain(expected);
    }
  });
});
