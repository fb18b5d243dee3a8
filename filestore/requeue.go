package filestore

import (
	"context"
	"fmt"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	bolt "go.etcd.io/bbolt"
)

// Requeue implements webhook.Store. Requeueing by endpoint scans every delivery.
func (s *Store) Requeue(ctx context.Context, p store.RequeueParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	var res error
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		var ids []string
		if len(p.IDs) > 0 {
			seen := make(map[string]bool, len(p.IDs))
			for _, id := range p.IDs {
				if seen[id] {
					continue
				}
				seen[id] = true
				d, ok, err := b.getDelivery(id, false)
				switch {
				case err != nil:
					return err
				case !ok:
					res = fmt.Errorf("%w: %s", webhook.ErrNotFound, id)
					return errRollback
				case b.quarantine.Get([]byte(id)) != nil:
					res = fmt.Errorf("%w: %s: its record was damaged and cannot be sent again (its bytes are kept: Store.Quarantined)", webhook.ErrInvalidState, id)
					return errRollback
				case !d.State.Finished():
					res = fmt.Errorf("%w: %s is %s; only succeeded or failed deliveries can be requeued", webhook.ErrInvalidState, id, d.State)
					return errRollback
				}
				ids = append(ids, id)
			}
		} else {
			c := b.deliveries.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				d, err := decodeDelivery(k, v, false)
				if err != nil || b.quarantine.Get(k) != nil {
					continue // nothing to send again
				}
				if d.State == webhook.StateFailed && d.EndpointID == p.EndpointID && !d.CreatedAt.Before(p.Since) {
					ids = append(ids, d.ID)
				}
			}
		}
		for _, id := range ids {
			d, _, err := b.getDelivery(id, true)
			if err != nil {
				return err
			}
			d.Requeue(p.Now)
			if err := b.putDelivery(&d); err != nil {
				return err
			}
			if err := b.dueInsert(d.EndpointID, d.NextAttemptAt, d.ID); err != nil {
				return err
			}
		}
		n = len(ids)
		return b.setUnfinished(unfinished(tx) + n)
	})
	if res != nil {
		return 0, res
	}
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}
