// Waiting on a condition in tests: poll until it holds or a deadline passes, never a fixed sleep
// standing in for it.

/** Poll `pred` until true or the deadline; the error names what was awaited (and `detail()`). */
export async function waitUntil (what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 5_000, detail?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await pred()) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`)
}
