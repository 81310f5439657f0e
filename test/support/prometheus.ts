/**
 * A strict reader of Prometheus text format 0.0.4, enough to prove /metrics parses:
 * every sample belongs to a metric with HELP and TYPE given once, before its samples;
 * names and labels are well formed; values are numbers; no series appears twice.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/;

export function parsePrometheus(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const seen = new Set<string>();
  const samples: Sample[] = [];
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1}: ${line}`;
      if (line.trim() === '') return;
      if (line.startsWith('#')) {
        const [, keyword, name, ...rest] = line.split(' ');
        if (keyword === 'HELP') {
          if (!name || !NAME.test(name) || helps.has(name)) throw new Error(`bad or repeated HELP, ${where}`);
          helps.add(name);
        } else if (keyword === 'TYPE') {
          const type = rest.join(' ');
          if (!name || !NAME.test(name) || types.has(name)) throw new Error(`bad or repeated TYPE, ${where}`);
          if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) throw new Error(`unknown type, ${where}`);
          types.set(name, type);
        }
        return;
      }
      const m = SAMPLE.exec(line);
      if (!m) throw new Error(`not a sample, ${where}`);
      const [, name, , labelText, rawValue] = m;
      const family = name!.replace(/_(bucket|sum|count)$/, '');
      if (!types.has(name!) && !types.has(family)) throw new Error(`sample before its TYPE, ${where}`);
      const labels: Record<string, string> = {};
      if (labelText) {
        for (const part of splitLabels(labelText)) {
          const l = LABEL.exec(part);
          if (!l) throw new Error(`bad label ${part}, ${where}`);
          labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        }
      }
      const value = rawValue === '+Inf' ? Infinity : rawValue === '-Inf' ? -Infinity : Number(rawValue);
      if (rawValue !== 'NaN' && Number.isNaN(value)) throw new Error(`bad value, ${where}`);
      if (types.get(name!) === 'counter' && value < 0) throw new Error(`negative counter, ${where}`);
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(key)) throw new Error(`series repeated, ${where}`);
      seen.add(key);
      samples.push({ name: name!, labels, value });
    });
  return samples;
}

function splitLabels(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && quoted) {
      current += c + (text[++i] ?? '');
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  if (current) parts.push(current);
  return parts;
}

/** The value of one series (labels must match exactly those given); undefined when absent. */
export function metricValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find(
    (s) => s.name === name && Object.keys(s.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

export async function scrape(baseUrl: string): Promise<Sample[]> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  if (!(res.headers.get('content-type') ?? '').startsWith('text/plain')) throw new Error('/metrics is not text/plain');
  return parsePrometheus(await res.text());
}
