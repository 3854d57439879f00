package server

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"

	"github.com/secondopinion/gateway/graph"
)

func TestOnlyOperationsThatReadListsOfObjectsWaitToBatch(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema() // the schema served
	for query, batch := range map[string]bool{
		`{ case(id: "c") { id status records { id title } events { type } consents { kind }
		   policy { policyNumber } patient { birthYear } specialist { name } opinion { status specialist { name } } } }`: false,
		`query Detail($id: ID!) { case(id: $id) { ...C } } fragment C on Case { diagnosis { code } opinion { id } }`: false,
		`{ specialist(id: "s") { name } viewer { role } }`:                                                           false,
		`{ cases(first: 50) { edges { node { id policy { id } } } } }`:                                               true,
		`{ policy(id: "p") { insured { id } } }`:                                                                     true,
		`{ ... on Query { specialists(first: 5) { totalCount } } }`:                                                  true,
		`query { case(id: "c") { id } ...P } fragment P on Query { policies(first: 2) { totalCount } }`:              true,
		`{ specialistMatches(caseId: "c") { score specialist { name } } }`:                                           true,
	} {
		doc, errs := gqlparser.LoadQuery(schema, query)
		require.Nil(t, errs, query)
		assert.Equal(t, batch, batchesEdges(doc.Operations[0]), query)
	}
}
