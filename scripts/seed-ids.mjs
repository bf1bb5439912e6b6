// The deterministic ids of supabase/seed.sql (md5 of a label, read as a UUID).
import { createHash } from "node:crypto";

export function seedUuid(label) {
  const hex = createHash("md5").update(label).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const seed = {
  user: (n) => seedUuid(`user-${n}`),
  workspace: (w) => seedUuid(`workspace-${w}`),
  board: (w, b) => seedUuid(`board-${w}-${b}`),
  column: (w, b, c) => seedUuid(`column-${w}-${b}-${c}`),
};
