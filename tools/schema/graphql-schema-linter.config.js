// graphql-schema-linter configuration for schema.graphqls (make lint).
//
// The rules are listed explicitly. Left out on purpose:
// - enum-values-sorted-alphabetically, type-fields-sorted-alphabetically,
//   input-object-fields-sorted-alphabetically, interface-fields-sorted-alphabetically:
//   the schema keeps DESIGN.md's order (CaseStatus follows the lifecycle,
//   fields follow the contract's tables); sorting would reorder the contract,
//   not add to it.
module.exports = {
  schemaPaths: ['../../schema.graphqls', '../../graph/schema/*.graphqls'],
  customRulePaths: ['rules/*.js'],
  rules: [
    // descriptions everywhere
    'types-have-descriptions',
    'fields-have-descriptions',
    'arguments-have-descriptions',
    'enum-values-have-descriptions',
    'input-object-values-have-descriptions',
    'descriptions-are-capitalized',
    // naming
    'enum-values-all-caps',
    'types-are-capitalized',
    'fields-are-camel-cased',
    'input-object-values-are-camel-cased',
    // Relay connection shapes
    'relay-connection-types-spec',
    'relay-connection-arguments-spec',
    'relay-page-info-spec',
    // hygiene
    'defined-types-are-used',
    'deprecations-have-a-reason',
    // mutations: one `input: XInput!` argument, a payload object back
    'mutations-take-one-input',
  ],
};
