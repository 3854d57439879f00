// mutations-take-one-input: every mutation takes exactly one argument,
// `input: <Name>Input!` (a non-null input object), and returns an object
// payload — the shape DESIGN.md §5 fixes for every mutation.
const { ValidationError } = require('graphql-schema-linter/lib/validation_error');

function MutationsTakeOneInput(configuration, context) {
  return {
    ObjectTypeDefinition(node) {
      if (node.name.value !== 'Mutation') return;
      for (const field of node.fields || []) {
        const name = field.name.value;
        const args = field.arguments || [];
        const arg = args[0];
        const ok =
          args.length === 1 &&
          arg.name.value === 'input' &&
          arg.type.kind === 'NonNullType' &&
          arg.type.type.kind === 'NamedType' &&
          /Input$/.test(arg.type.type.name.value);
        if (!ok) {
          context.reportError(new ValidationError('mutations-take-one-input',
            `The mutation \`${name}\` must take exactly one argument \`input: ${name[0].toUpperCase() + name.slice(1)}Input!\`.`, [field]));
        }
        let t = field.type;
        if (t.kind === 'NonNullType') t = t.type;
        if (t.kind !== 'NamedType' || !/Payload$/.test(t.name.value)) {
          context.reportError(new ValidationError('mutations-take-one-input',
            `The mutation \`${name}\` must return a \`…Payload\` object.`, [field]));
        }
      }
    },
  };
}

module.exports = { MutationsTakeOneInput };
