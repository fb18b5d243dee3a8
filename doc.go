// Package webhook sends signed webhooks from inside a Go service.
//
// A [Sender] fans each [Event] out to the [Endpoint]s whose filters match, stores one
// [Delivery] per endpoint in a [Store] before Send returns, and delivers them from a
// bounded pool of workers over a pooled HTTP transport. Failed attempts are retried on a
// durable schedule; every attempt is recorded.
//
// # Quick start
//
//	s, err := webhook.NewSender(
//		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_1", URL: u, Secret: secret}),
//	)
//	if err != nil { ... }
//	defer s.Close(ctx)
//	ids, err := s.Send(ctx, webhook.Event{Type: "user.registered", Data: user})
//
// # Signatures
//
// Requests are signed with the Standard Webhooks scheme by default ([StandardSigner]):
// headers webhook-id, webhook-timestamp and webhook-signature. Receivers verify with
// [Verifier] or any Standard Webhooks library. [HexSigner] produces the single-header
// hex HMAC form used by GitHub-style receivers.
//
// # Delivery semantics
//
// Delivery is at least once. The event ID (webhook-id header, "id" in the envelope) is the
// same on every attempt and is the receiver's idempotency key.
//
// # Testing
//
// Package webhooktest provides an in-memory fake transport, a fake clock and a verifying
// test receiver on loopback.
package webhook
