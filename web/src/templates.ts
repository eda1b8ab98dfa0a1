// Message templates for the composer: their variables, a live preview, and the send body.

export type TemplateComponent = {
  type: string;
  format?: string;
  text?: string;
  buttons?: { type: string; text?: string; url?: string }[];
};

export type Template = {
  id: string;
  business_account_id: string;
  name: string;
  language_code: string;
  category: string;
  status: string;
  parameter_format: "POSITIONAL" | "NAMED";
  components: TemplateComponent[] | null;
};

/** A value the agent fills in: a text variable, or a header media link. */
export type Slot = { component: "header" | "body"; key: string; kind: "text" | "image" | "video" | "document" };

const VARIABLE = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;

function part(t: Template, type: string): TemplateComponent | undefined {
  return (t.components ?? []).find((c) => c.type.toUpperCase() === type);
}

/** The variables of a template's header and body, in order of appearance. */
export function slots(t: Template): Slot[] {
  const out: Slot[] = [];
  const header = part(t, "HEADER");
  const format = (header?.format ?? "TEXT").toUpperCase();
  if (header && format !== "TEXT" && format !== "LOCATION") {
    out.push({ component: "header", key: "media", kind: format.toLowerCase() as Slot["kind"] });
  }
  for (const [component, c] of [
    ["header", format === "TEXT" ? header : undefined],
    ["body", part(t, "BODY")],
  ] as const) {
    const seen = new Set<string>();
    for (const m of (c?.text ?? "").matchAll(VARIABLE)) {
      if (seen.has(m[1])) continue;
      seen.add(m[1]);
      out.push({ component, key: m[1], kind: "text" });
    }
  }
  return out;
}

const fill = (text: string, component: string, values: Record<string, string>) =>
  text.replace(VARIABLE, (whole, key: string) => values[`${component}.${key}`] || whole);

/** What the customer will see: header, body, footer and buttons with the values filled in. */
export function preview(t: Template, values: Record<string, string>) {
  const header = part(t, "HEADER");
  const format = (header?.format ?? "TEXT").toUpperCase();
  return {
    header: header && format === "TEXT" ? fill(header.text ?? "", "header", values) : "",
    headerMedia: header && format !== "TEXT" ? { kind: format.toLowerCase(), link: values["header.media"] ?? "" } : null,
    body: fill(part(t, "BODY")?.text ?? "", "body", values),
    footer: part(t, "FOOTER")?.text ?? "",
    buttons: (part(t, "BUTTONS")?.buttons ?? []).map((b) => b.text ?? b.type),
  };
}

/** Every slot has a value. */
export function complete(t: Template, values: Record<string, string>): boolean {
  return slots(t).every((s) => (values[`${s.component}.${s.key}`] ?? "").trim() !== "");
}

/** Meta's send body for the template with these values. */
export function sendBody(t: Template, to: string, values: Record<string, string>): Record<string, unknown> {
  const named = t.parameter_format === "NAMED";
  const components: Record<string, unknown>[] = [];
  for (const component of ["header", "body"] as const) {
    const mine = slots(t).filter((s) => s.component === component);
    if (mine.length === 0) continue;
    components.push({
      type: component,
      parameters: mine.map((s) => {
        const value = values[`${component}.${s.key}`] ?? "";
        if (s.kind !== "text") return { type: s.kind, [s.kind]: { link: value } };
        return named ? { type: "text", parameter_name: s.key, text: value } : { type: "text", text: value };
      }),
    });
  }
  return {
    to,
    type: "template",
    template: { name: t.name, language: { code: t.language_code }, ...(components.length ? { components } : {}) },
  };
}
