// The only module that talks to the server: GraphQL POSTs as JSON to this page's own origin,
// with the read key (kept in this tab's session storage only) as a bearer token; no cookies.

const KEY = "claude-api-analytics.key";

export class ApiError extends Error {
  constructor(message, { status = null, code = null, data = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.data = data;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = storedKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** Whether this server asks this page for an API key (its public health answer says). */
export async function keyRequired() {
  try {
    const response = await fetch("/healthz", { cache: "no-store", credentials: "omit" });
    return (await response.json()).auth === "required";
  } catch {
    return false;
  }
}

/** The `data` of a GraphQL query; ApiError (with `code`, and `data` when partial) otherwise. */
export async function graphql(query, variables = {}) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify({ query, variables }),
    cache: "no-store",
    credentials: "omit",
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} ${response.statusText}`, {
      status: response.status,
    });
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    throw new ApiError(body.errors.map((error) => error.message).join("; "), {
      status: response.status,
      code: first.extensions ? first.extensions.code : null,
      data: body.data || null,
    });
  }
  return body.data;
}

/**
 * The data version now, as its ETag: `{changed, etag}` against `etag` (the server answers 304,
 * without a body, while it is unchanged).
 */
export async function dataVersion(etag) {
  const response = await fetch("/dashboard/version", {
    headers: headers(etag ? { "If-None-Match": etag } : {}),
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 304) return { changed: false, etag };
  if (!response.ok) {
    throw new ApiError(`the data version answered ${response.status}`, { status: response.status });
  }
  const now = response.headers.get("ETag");
  return { changed: now !== etag, etag: now };
}
