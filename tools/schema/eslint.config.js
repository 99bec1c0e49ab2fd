// @graphql-eslint on schema.graphqls (issue #6): the schema-recommended and relay rule
// sets, with descriptions required on every element. make schema-check runs it from the
// repository root: tools/schema/node_modules/.bin/eslint -c tools/schema/eslint.config.js schema.graphqls
import graphqlPlugin from '@graphql-eslint/eslint-plugin';

export default [
  {
    files: ['schema.graphqls'],
    languageOptions: {
      parser: graphqlPlugin.parser,
      parserOptions: { graphQLConfig: { schema: 'schema.graphqls' } },
    },
    plugins: { '@graphql-eslint': graphqlPlugin },
    rules: {
      ...graphqlPlugin.configs['flat/schema-recommended'].rules,
      ...graphqlPlugin.configs['flat/schema-relay'].rules,

      // The recommended set asks only types, directives and root fields for a description;
      // clients read the schema as documentation, so every field, argument, input field and
      // enum value needs one too.
      '@graphql-eslint/require-description': [
        'error',
        {
          types: true,
          rootField: true,
          DirectiveDefinition: true,
          FieldDefinition: true,
          InputValueDefinition: true,
          EnumValueDefinition: true,
        },
      ],

      // Types without an identity of their own: a connection, an edge and PageInfo describe
      // a page; a payload is the one-off result of a mutation; a UserError is a message; a
      // Count is a number. Everything with an identity implements Node with `id: ID!`.
      '@graphql-eslint/strict-id-in-types': [
        'error',
        { exceptions: { types: ['Count', 'PageInfo', 'UserError'], suffixes: ['Connection', 'Edge', 'Payload'] } },
      ],

      // listTypeCanWrapOnlyEdgeType is off, the rule's other checks stay: the contract
      // (issue #2) has plain lists where they fit better than a connection and that
      // clients rely on by name: `nodes` on every connection (GitHub's and Shopify's
      // shape), Query.nodes(ids:) from the Relay server specification, Contact.segments,
      // and the mutation payloads' `segments`, `contacts`, `userErrors` and ID lists.
      '@graphql-eslint/relay-edge-types': [
        'error',
        { withEdgeSuffix: true, shouldImplementNode: true, listTypeCanWrapOnlyEdgeType: false },
      ],
    },
  },
];
