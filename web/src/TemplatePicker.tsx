// Choosing an approved template, filling its variables, and seeing exactly what the
// customer will receive before sending it (the only way to write when the window is closed).

import { useEffect, useMemo, useState } from "react";
import { complete, preview, sendBody, slots, type Template } from "./templates";

type Props = {
  load: () => Promise<Template[]>;
  to: string;
  onSend: (body: Record<string, unknown>) => Promise<void>;
  onClose: () => void;
};

export function TemplatePicker({ load, to, onSend, onClose }: Props) {
  const [templates, setTemplates] = useState<Template[]>([]);
  const [chosenId, setChosenId] = useState("");
  const [values, setValues] = useState<Record<string, string>>({});
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    load()
      .then(setTemplates)
      .catch((e) => setError(e instanceof Error ? e.message : String(e)));
  }, [load]);

  const chosen = templates.find((t) => t.id === chosenId);
  const shown = useMemo(() => (chosen ? preview(chosen, values) : null), [chosen, values]);

  return (
    <div className="picker" role="dialog" aria-label="Send a template">
      <div className="picker-head">
        <strong>Send a template</strong>
        <button type="button" onClick={onClose} aria-label="Close templates">
          ✕
        </button>
      </div>
      {templates.length === 0 && !error && <div className="muted">No approved templates for this number.</div>}
      <select
        aria-label="Template"
        value={chosenId}
        onChange={(e) => {
          setChosenId(e.target.value);
          setValues({});
        }}
      >
        <option value="">Choose a template</option>
        {templates.map((t) => (
          <option key={t.id} value={t.id}>
            {t.name} ({t.language_code})
          </option>
        ))}
      </select>
      {chosen && (
        <div className="picker-body">
          <div className="fields">
            {slots(chosen).map((s) => {
              const id = `${s.component}.${s.key}`;
              const label = s.kind === "text" ? `${s.component} {{${s.key}}}` : `header ${s.kind} link`;
              return (
                <label key={id}>
                  {label}
                  <input
                    aria-label={label}
                    value={values[id] ?? ""}
                    placeholder={s.kind === "text" ? "" : "https://…"}
                    onChange={(e) => setValues((v) => ({ ...v, [id]: e.target.value }))}
                  />
                </label>
              );
            })}
          </div>
          {shown && (
            <div className="bubble out template-preview" data-testid="template-preview">
              {shown.headerMedia && <div className="header">[{shown.headerMedia.kind}] {shown.headerMedia.link}</div>}
              {shown.header && <div className="header">{shown.header}</div>}
              <div className="text">{shown.body}</div>
              {shown.footer && <div className="footer">{shown.footer}</div>}
              {shown.buttons.length > 0 && (
                <div className="choices">
                  {shown.buttons.map((b, n) => (
                    <span className="choice" key={n}>
                      {b}
                    </span>
                  ))}
                </div>
              )}
            </div>
          )}
        </div>
      )}
      {error && (
        <div className="error" role="alert">
          {error}
        </div>
      )}
      <button
        type="button"
        disabled={!chosen || !complete(chosen, values) || busy}
        onClick={async () => {
          if (!chosen) return;
          setBusy(true);
          setError("");
          try {
            await onSend(sendBody(chosen, to, values));
            onClose();
          } catch (e) {
            setError(e instanceof Error ? e.message : String(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        Send template
      </button>
    </div>
  );
}
