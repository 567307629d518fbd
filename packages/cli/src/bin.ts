#!/usr/bin/env node
// The `threadgrad` executable: runs the command line and exits with its status.
import { main } from "./program.js";

const code = await main(process.argv.slice(2));
// Exit explicitly: an idle worker pool or a leftover timer must not keep a finished run alive.
// stdout and stderr are synchronous for files and pipes on POSIX, so nothing printed is lost.
process.exit(code);
