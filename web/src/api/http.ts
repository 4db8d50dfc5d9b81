// The one place that talks HTTP to the relay. Requests carry the session cookie (same origin); the relay's
// error body is {"error": code, "detail": string | [{field, message}]}, turned into an ApiError with a message a
// person can read.

export interface FieldProblem {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: FieldProblem[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

type Query = Record<string, string | number | boolean | null | undefined>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function failure(response: Response): Promise<ApiError> {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  let problems: FieldProblem[] = [];
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object") {
      const record = body as { error?: unknown; detail?: unknown };
      if (typeof record.error === "string") code = record.error;
      if (typeof record.detail === "string") message = record.detail;
      else if (Array.isArray(record.detail)) {
        problems = record.detail.filter(
          (p): p is FieldProblem => !!p && typeof p === "object" && "field" in p && "message" in p,
        );
        message = problems.map((p) => `${p.field}: ${p.message}`).join("; ") || message;
      }
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message, problems);
}

export async function request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  let response: Response;
  try {
    response = await fetch(withQuery(path, query), {
      method,
      credentials: "same-origin",
      headers: body === undefined ? { Accept: "application/json" } : { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "the relay cannot be reached");
  }
  if (!response.ok) {
    const error = await failure(response);
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
    throw error;
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

const unauthorizedListeners = new Set<(error: ApiError) => void>();

/** Called with every 401, so the auth store can send the person back to /login. */
export function onUnauthorized(listener: (error: ApiError) => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}
