package domain

// The methods below let the entities stand in the GraphQL Node interface;
// GetID is the raw id, which the API layer turns into a global one.

// IsNode marks Policy as a Node.
func (*Policy) IsNode() {}

// GetID returns the raw id.
func (p *Policy) GetID() string { return p.ID }

// IsNode marks Patient as a Node.
func (*Patient) IsNode() {}

// GetID returns the raw id.
func (p *Patient) GetID() string { return p.ID }

// IsNode marks Case as a Node.
func (*Case) IsNode() {}

// GetID returns the raw id.
func (c *Case) GetID() string { return c.ID }

// IsNode marks Specialist as a Node.
func (*Specialist) IsNode() {}

// GetID returns the raw id.
func (s *Specialist) GetID() string { return s.ID }

// IsNode marks Opinion as a Node.
func (*Opinion) IsNode() {}

// GetID returns the raw id.
func (o *Opinion) GetID() string { return o.ID }

// IsNode marks AuditEvent as a Node.
func (*AuditEvent) IsNode() {}

// GetID returns the raw id.
func (e *AuditEvent) GetID() string { return e.ID }

// IsNode marks Organization as a Node.
func (*Organization) IsNode() {}

// GetID returns the raw id.
func (o *Organization) GetID() string { return o.ID }
