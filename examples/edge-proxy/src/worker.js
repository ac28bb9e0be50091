// A Cloudflare Worker that fronts Northflank for browsers: it keeps the API token, and pages
// drive their sandboxes with capabilities it hands out. Configuration comes from the
// environment (wrangler.toml's [vars], and secrets for the token and the key).
import { createEdgeProxy } from "flankbox/edge";

let proxy;

function edge(env) {
  proxy ??= createEdgeProxy({
    token: env.NF_TOKEN,
    projectId: env.NF_PROJECT,
    teamId: env.NF_TEAM || undefined,
    secret: env.EDGE_SECRET,
    upstream: env.NF_UPSTREAM || undefined,
    policy: JSON.parse(env.EDGE_POLICY || "{}"),
  });
  return proxy;
}

export default {
  fetch: (request, env, ctx) => edge(env).fetch(request, env, ctx),
  scheduled: (event, env, ctx) => edge(env).scheduled(event, env, ctx),
};
