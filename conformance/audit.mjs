// Runs the GraphQL-over-HTTP audits of graphql-http against a live gateway.
// Usage: node audit.mjs <url> <bearer token>
import { serverAudits } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node audit.mjs <url> <token>');
  process.exit(2);
}

// Every request carries the dev token: the gateway authenticates before it
// reads GraphQL at all.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

let passed = 0;
let failed = 0;
let warned = 0;
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  if (result.status === 'ok') {
    passed++;
  } else if (result.status === 'warn') {
    warned++;
    console.log(`WARN  ${audit.id} ${audit.name}: ${result.reason}`);
  } else {
    failed++;
    console.log(`ERROR ${audit.id} ${audit.name}: ${result.reason}`);
  }
}
console.log(`graphql-http audits with ${warned} warnings (SHOULDs, listed above)`);
console.log(`conformance: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
