/**
 * @file Output paths: checked before any work starts, written atomically (a temporary name in the
 * same folder, renamed when complete), file-system errors as one line naming the path.
 */
import { basename, dirname, join, resolve } from "node:path";

/** An output path that cannot be used, or a write that failed; the message names the path. */
export class OutputError extends Error {
  override name = "OutputError";
}

/** The reason of a Deno file-system error, without its stack or the repeated path. */
function reason(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotFound) return "a folder on the way does not exist";
  if (e instanceof Deno.errors.AlreadyExists) return "it already exists";
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/:? *[a-z]+ '[^']*'(?: -> '[^']*')?$/, "").replace(
    / \(os error \d+\)$/,
    "",
  );
}

async function statOrNull(path: string, flag: string, given: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      // A symbolic link to nothing would fail only when written through, after the work.
      if (await Deno.lstat(path).then((l) => l.isSymlink, () => false)) {
        throw new OutputError(
          `${flag} ${given}: ${path === resolve(given) ? "it" : path} is a symbolic link to a missing target`,
        );
      }
      return null;
    }
    if (e instanceof Deno.errors.NotADirectory) throw new OutputError(`${flag} ${given}: a part of the path is a file`);
    throw new OutputError(`${flag} ${given}: ${reason(e)}`);
  }
}

/**
 * Proves that `dir` can hold output files without creating anything: an existing folder must take a
 * file; a missing one must be creatable in its nearest existing ancestor. `files`, the names the
 * command will write into it, must be absent or regular files. `flag` names the option; `given`, the
 * path the user gave (the folder of an output file).
 */
export async function prepareOutputDir(
  dir: string,
  flag = "--out",
  files: readonly string[] = [],
  given = dir,
): Promise<void> {
  let at = resolve(dir), info = await statOrNull(at, flag, given);
  if (info && !info.isDirectory) throw new OutputError(`${flag} ${given}: exists and is not a folder`);
  while (!info) { // the nearest existing ancestor
    at = dirname(at);
    info = await statOrNull(at, flag, given);
  }
  if (!info.isDirectory) throw new OutputError(`${flag} ${given}: a part of the path is a file`);
  const probe = join(at, `.varc-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  try {
    await Deno.mkdir(probe);
    await Deno.remove(probe);
  } catch (e) {
    throw new OutputError(`${flag} ${given}: cannot write in ${at} (${reason(e)})`);
  }
  if (at !== resolve(dir)) return; // a new folder holds nothing yet
  for (const f of files) await checkFile(join(dir, f), flag, join(dir, f));
}

/** An existing output file must be a regular file (a folder or a FIFO would fail only at the rename). */
async function checkFile(file: string, flag: string, given: string): Promise<void> {
  const info = await statOrNull(file, flag, given);
  if (info && info.isDirectory) throw new OutputError(`${flag} ${given}: is a folder, expected a file name`);
  if (info && !info.isFile) throw new OutputError(`${flag} ${given}: exists and is not a regular file`);
}

/** Checks that `file` can be written (its folder is created); an existing folder is not a file. */
export async function prepareOutputFile(file: string, flag = "--out"): Promise<void> {
  await checkFile(file, flag, file);
  await prepareOutputDir(dirname(file), flag, [], file);
}

/**
 * Writes `data` to `file` atomically: a temporary file in the same folder, renamed over `file` once
 * complete, so a failure (a full disk, a size limit) never leaves a partial file under the final name.
 */
export async function writeAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await Deno.mkdir(dirname(file), { recursive: true });
    await Deno.writeFile(tmp, bytes, { createNew: true });
    await Deno.rename(tmp, file);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new OutputError(`writing ${file} failed: ${reason(e)}${bytes.length ? ` (${bytes.length} bytes)` : ""}`);
  }
}
