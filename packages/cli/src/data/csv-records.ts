/** The longest field the tokenizer keeps, so one huge quoted field cannot fill memory. */
export const MAX_FIELD_CHARS = 1 << 16;
/** The last line a record may start on: row line numbers are kept as int32. */
export const MAX_CSV_LINE = 2 ** 31 - 1;

/** Receives fields as the tokenizer finds them; lines are 1-based, fields 0-based. */
export interface CsvSink {
  /** One field's text (quotes removed, `""` made `"`), its index in its record and the line it starts on. */
  field(text: string, index: number, line: number): void;
  /** The record that started on `line` ended after `count` fields. */
  endRecord(count: number, line: number): void;
}

/** One CSV record and the file line it starts on (1-based; quoted newlines make records span lines). */
export interface CsvRecord {
  fields: string[];
  line: number;
}

/** The field separators a CSV file may use (`--delimiter`). */
export const CSV_DELIMITERS = [",", ";", "\t"] as const;
export type CsvDelimiter = (typeof CSV_DELIMITERS)[number];
const QUOTE = 34;
const LF = 10;
const CR = 13;
const SPACE = 32;
const TAB = 9;

// Where the tokenizer is: START (a field's first character, or blanks before an opening quote),
// UNQUOTED, QUOTED, QUOTE_SEEN (a quote inside a quoted field: `""` or the closing one) and
// CLOSED (after the closing quote, where only blanks may come before the comma or line end).
const START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
const QUOTE_SEEN = 3;
const CLOSED = 4;

/**
 * A streaming CSV tokenizer: comma-separated, double-quoted fields may hold commas, line breaks and
 * `""` for a quote; LF, CRLF or CR line endings. The separator is a comma unless `delimiter` says
 * `;` or tab. Text arrives in chunks of any size (a CRLF or a doubled quote may be split between
 * two) and lines are counted exactly across them. Blank lines are dropped, so a trailing newline
 * is fine. Errors name the file, line and field, never its text.
 * @example const t = new CsvTokenizer("f.csv", sink); t.write("a,b\r"); t.write("\n1,2"); t.end();
 */
export class CsvTokenizer {
  private state = START;
  // The current field's text from earlier chunks (or earlier `""`s); the rest is chunk[start..i).
  private text = "";
  private index = 0;
  private line = 1;
  // -1 until the field or record has seen its first character.
  private fieldLine = -1;
  private recordLine = -1;
  private isAfterCR = false;

  private readonly sep: number;

  constructor(
    private readonly file: string,
    private readonly sink: CsvSink,
    delimiter: CsvDelimiter = ",",
  ) {
    this.sep = delimiter.charCodeAt(0);
  }

  write(chunk: string): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      // The LF of a CRLF ends nothing: the CR before it did.
      const isLineEnd = c === CR || (c === LF && !this.isAfterCR);
      const isLF2 = c === LF && this.isAfterCR;
      this.isAfterCR = c === CR;
      switch (this.state) {
        case START:
          if (this.recordLine < 0) this.recordLine = this.line;
          if (this.fieldLine < 0) this.fieldLine = this.line;
          if (c === QUOTE) {
            this.text = "";
            start = i + 1;
            this.state = QUOTED;
          } else if (c === this.sep) {
            this.endField(chunk, start, i);
            start = i + 1;
          } else if (isLineEnd || isLF2) {
            if (this.index === 0 && this.text === "" && start === i) {
              this.recordLine = this.fieldLine = -1; // a blank line, or the LF of a CRLF
            } else {
              this.endField(chunk, start, i);
              this.endRecord();
            }
            start = i + 1;
          } else if (c !== SPACE && c !== TAB) {
            this.state = UNQUOTED;
          }
          break;
        case UNQUOTED:
          if (c === this.sep || isLineEnd) {
            this.endField(chunk, start, i);
            if (isLineEnd) this.endRecord();
            start = i + 1;
          }
          break;
        case QUOTED:
          if (c === QUOTE) {
            this.text += chunk.slice(start, i);
            this.state = QUOTE_SEEN;
          }
          break;
        case QUOTE_SEEN:
          if (c === QUOTE) {
            this.text += '"';
            start = i + 1;
            this.state = QUOTED;
            break;
          }
          this.state = CLOSED;
          this.closed(c, isLineEnd, chunk, i);
          start = i + 1;
          break;
        default:
          this.closed(c, isLineEnd, chunk, i);
          start = i + 1;
      }
      if (isLineEnd) this.line++;
    }
    if (this.state === START || this.state === UNQUOTED || this.state === QUOTED) {
      this.text += chunk.slice(start);
      this.checkLength(this.text.length);
    }
  }

  /** Ends the input: the last record needs no line end, a quoted field must be closed. */
  end(): void {
    if (this.state === QUOTED) {
      throw new Error(`csv: ${this.file} line ${this.fieldLine}: a quoted field is never closed`);
    }
    if (this.state === START && this.index === 0 && this.text === "") return;
    this.endField("", 0, 0);
    this.endRecord();
  }

  // After a closing quote: blanks, then the separator or line end that ends the field.
  private closed(c: number, isLineEnd: boolean, chunk: string, i: number): void {
    if (c !== this.sep && (c === SPACE || c === TAB)) return;
    if (c !== this.sep && !isLineEnd) {
      throw new Error(
        `csv: ${this.file} line ${this.line}, column ${this.index + 1}: text after the closing quote of a field`,
      );
    }
    this.endField(chunk, i, i);
    if (isLineEnd) this.endRecord();
  }

  private checkLength(length: number): void {
    if (length > MAX_FIELD_CHARS) {
      throw new Error(
        `csv: ${this.file} line ${this.fieldLine}, column ${this.index + 1}: ` +
          `a field longer than ${MAX_FIELD_CHARS} characters`,
      );
    }
  }

  private endField(chunk: string, start: number, end: number): void {
    const isPending = this.state === START || this.state === UNQUOTED;
    this.checkLength(this.text.length + (isPending ? end - start : 0));
    const text = isPending ? this.text + chunk.slice(start, end) : this.text;
    this.sink.field(text, this.index, this.fieldLine < 0 ? this.line : this.fieldLine);
    this.index++;
    this.text = "";
    this.fieldLine = -1;
    this.state = START;
  }

  private endRecord(): void {
    const line = this.recordLine < 0 ? this.line : this.recordLine;
    if (line > MAX_CSV_LINE) throw new Error(`csv: ${this.file} has more than ${MAX_CSV_LINE} lines`);
    this.sink.endRecord(this.index, line);
    this.index = 0;
    this.recordLine = -1;
  }
}

/**
 * Splits CSV text into records with CsvTokenizer.
 * @example readCsvRecords('a,"b,c"\r\n1,2\r\n', "f.csv")[1] // { fields: ["1", "2"], line: 2 }
 */
export function readCsvRecords(text: string, file: string, delimiter: CsvDelimiter = ","): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  const tokenizer = new CsvTokenizer(
    file,
    {
      field: (value) => fields.push(value),
      endRecord: (_count, line) => {
        records.push({ fields, line });
        fields = [];
      },
    },
    delimiter,
  );
  tokenizer.write(text);
  tokenizer.end();
  return records;
}

/** Fields in each of the first lines of `text` split by `sep` (the last may be cut short), quotes respected. */
function fieldCounts(text: string, sep: string, maxLines: number): number[] {
  const counts: number[] = [];
  let fields = 1,
    isQuoted = false,
    isEmpty = true;
  for (let i = 0; i < text.length && counts.length < maxLines; i++) {
    const c = text[i]!;
    if (c === '"') isQuoted = !isQuoted;
    else if (isQuoted) continue;
    else if (c === sep) fields++;
    else if (c === "\n" || c === "\r") {
      if (!isEmpty) counts.push(fields);
      fields = 1;
      isEmpty = true;
      continue;
    }
    isEmpty = false;
  }
  if (!isEmpty && counts.length < maxLines) counts.push(fields);
  return counts;
}

/**
 * The separator of a CSV file from its first lines (`head`, e.g. the first chunk read): the
 * candidate (`,` `;` tab) that splits the header into the most fields, counting only candidates
 * that give every following line (of those in `head`, up to 20; the last may be cut short) the
 * header's count. A comma when no candidate splits the header.
 * @example detectDelimiter("a;b;c\n1,5;2;3\n") // ";"
 */
export function detectDelimiter(head: string): CsvDelimiter {
  let best: CsvDelimiter = ",",
    bestFields = 1;
  for (const sep of CSV_DELIMITERS) {
    const counts = fieldCounts(head, sep, 21);
    // The last line may be cut off by the end of the chunk: it only has to be no longer.
    const [header = 1, ...rows] = counts;
    const last = rows.pop();
    const isConsistent = rows.every((n) => n === header) && (last === undefined || last <= header);
    if (isConsistent && header > bestFields) {
      best = sep;
      bestFields = header;
    }
  }
  return best;
}
