package server

import (
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// rulesWithoutSuggestions is gqlparser's default rule set with every rule
// that can append "Did you mean …" (fields, arguments, types, enum values,
// input fields, leaf selections) swapped for its silent twin: with
// introspection off, suggestions would map the schema one typo at a time.
func rulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for old, silent := range map[string]core.Rule{
		rules.FieldsOnCorrectTypeRule.Name: rules.FieldsOnCorrectTypeRuleWithoutSuggestions,
		rules.KnownArgumentNamesRule.Name:  rules.KnownArgumentNamesRuleWithoutSuggestions,
		rules.KnownTypeNamesRule.Name:      rules.KnownTypeNamesRuleWithoutSuggestions,
		rules.ValuesOfCorrectTypeRule.Name: rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
		rules.ScalarLeafsRule.Name:         rules.ScalarLeafsRuleWithoutSuggestions,
	} {
		r.RemoveRule(old)
		r.AddRule(silent.Name, silent.RuleFunc)
	}
	return r
}

// dropSuggestions cuts any "Did you mean …" a message still carries, so a
// rule or library added later cannot leak names in production either.
func dropSuggestions(resp *graphql.Response) {
	for _, e := range resp.Errors {
		if i := strings.Index(e.Message, " Did you mean"); i >= 0 {
			e.Message = e.Message[:i]
		}
	}
}
