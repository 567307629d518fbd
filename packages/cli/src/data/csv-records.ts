/** One CSV record and the file line it starts on (1-based; quoted newlines make records span lines). */
export interface CsvRecord {
  fields: string[];
  line: number;
}

/**
 * Splits CSV text into records: comma-separated, double-quoted fields may hold commas, newlines and
 * `""` for a quote; LF or CRLF line endings. Blank lines are dropped, so a trailing newline is fine.
 * @example readCsvRecords('a,"b,c"\r\n1,2\r\n', "f.csv") // [{ fields: ["a", "b,c"], line: 1 }, { fields: ["1", "2"], line: 2 }]
 */
export function readCsvRecords(text: string, file: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = "";
  let line = 1;
  let recordLine = 1;
  let isQuoted = false;
  let quoteLine = 0;
  const endRecord = () => {
    fields.push(field);
    // A blank line parses as one empty field: skip it rather than call it a ragged row.
    if (fields.length > 1 || fields[0] !== "") records.push({ fields, line: recordLine });
    fields = [];
    field = "";
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (isQuoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        isQuoted = false;
      } else {
        if (c === "\n") line++;
        field += c;
      }
    } else if (c === '"' && field.trim() === "") {
      isQuoted = true;
      quoteLine = line;
      field = "";
    } else if (c === ",") {
      fields.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      field += c;
    }
  }
  if (isQuoted) throw new Error(`csv: ${file} line ${quoteLine}: a quoted field is never closed`);
  if (field !== "" || fields.length > 0) endRecord();
  return records;
}
