// Small text helpers shared by adapters that print or store what others wrote.

/** `s` cut to at most `max` characters, an ellipsis marking the cut. */
export function clip (s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}
