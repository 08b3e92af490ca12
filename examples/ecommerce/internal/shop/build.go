package shop

import "context"

// build makes the backends and the services that run here.
func (s *Shop) build(ctx context.Context) error {
	_ = ctx
	names := []struct {
		name, addr string
		url        *string
	}{
		{Payment, s.cfg.Addrs.Payment, &s.urls.Payment},
		{Inventory, s.cfg.Addrs.Inventory, &s.urls.Inventory},
		{Shipping, s.cfg.Addrs.Shipping, &s.urls.Shipping},
		{Catalogue, s.cfg.Addrs.Catalogue, &s.urls.Catalogue},
		{Orders, s.cfg.Addrs.Orders, &s.urls.Orders},
	}
	for _, n := range names {
		if !s.runs(n.name) {
			continue
		}
		sv, err := s.newServer(n.name, n.addr)
		if err != nil {
			return err
		}
		*n.url = sv.url()
		s.components = append(s.components, s.component(sv))
	}
	return nil
}
