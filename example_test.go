package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

// The Standard Webhooks specification's test vector: a published example secret, not a
// real one, so its signatures can be printed and checked against other libraries.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
)

// waitReports receives n attempt reports, or gives up after a while so a broken example
// fails instead of hanging.
func waitReports(reports <-chan webhook.AttemptReport, n int) []webhook.AttemptReport {
	var got []webhook.AttemptReport
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case r := <-reports:
			got = append(got, r)
		case <-timeout:
			fmt.Println("timed out waiting for attempts")
			return got
		}
	}
	return got
}

func ExampleNewSender() {
	ctx := context.Background()
	// An in-memory transport instead of the network; it answers 200 OK.
	tr := webhooktest.NewTransport()
	// Hooks run on the Sender's workers and must not block: buffer the channel.
	reports := make(chan webhook.AttemptReport, 1)

	s, err := webhook.NewSender(
		webhook.WithEndpoints(webhook.Endpoint{
			ID:     "ep_shop",
			URL:    "https://shop.example.com/webhooks",
			Secret: webhook.NewSecret(),
		}),
		webhook.WithTransport(tr),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) { reports <- r }}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)

	ids, err := s.Send(ctx, webhook.Event{Type: "order.created", Data: map[string]any{"order_id": 42}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("deliveries:", len(ids))

	for _, r := range waitReports(reports, 1) {
		fmt.Println("attempt", r.Delivery.Attempts, r.Attempt.StatusCode, r.Verdict)
	}
	req := tr.Requests()[0]
	fmt.Println(req.Method, req.URL)
	fmt.Println("Content-Type:", req.Header.Get("Content-Type"))
	fmt.Println("signed:", strings.HasPrefix(req.Header.Get(webhook.HeaderSignature), "v1,"))

	var env webhook.Envelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("webhook-id matches envelope:", req.Header.Get(webhook.HeaderID) == env.ID)
	fmt.Println(env.Type, env.Version, string(env.Data))
	// Output:
	// deliveries: 1
	// attempt 1 200 delivered
	// POST https://shop.example.com/webhooks
	// Content-Type: application/json
	// signed: true
	// webhook-id matches envelope: true
	// order.created 1 {"order_id":42}
}

// Each event goes to every endpoint whose EventTypes filter matches its type.
func ExampleSender_Send() {
	ctx := context.Background()
	tr := webhooktest.NewTransport()
	reports := make(chan webhook.AttemptReport, 8)
	secret := webhook.NewSecret()

	s, err := webhook.NewSender(
		webhook.WithEndpoints(
			webhook.Endpoint{ID: "ep_audit", URL: "https://audit.example.com/hook", Secret: secret}, // no filter: everything
			webhook.Endpoint{ID: "ep_billing", URL: "https://billing.example.com/hook", Secret: secret,
				EventTypes: []string{"order.*", "invoice.paid"}},
			webhook.Endpoint{ID: "ep_crm", URL: "https://crm.example.com/hook", Secret: secret,
				EventTypes: []string{"user.registered"}},
		),
		webhook.WithTransport(tr),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) { reports <- r }}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)

	sent := 0
	for _, typ := range []string{"order.created", "user.registered", "invoice.paid", "user.deleted"} {
		ids, err := s.Send(ctx, webhook.Event{Type: typ, Data: struct{}{}})
		if err != nil {
			fmt.Println(err)
			return
		}
		// Delivery IDs come back in endpoint ID order.
		var endpoints []string
		for _, id := range ids {
			d, err := s.Delivery(ctx, id)
			if err != nil {
				fmt.Println(err)
				return
			}
			endpoints = append(endpoints, d.EndpointID)
		}
		fmt.Printf("%-15s -> %v\n", typ, endpoints)
		sent += len(ids)
	}

	waitReports(reports, sent)
	for _, u := range []string{"https://audit.example.com/hook", "https://billing.example.com/hook", "https://crm.example.com/hook"} {
		fmt.Println(u, len(tr.RequestsTo(u)))
	}
	// Output:
	// order.created   -> [ep_audit ep_billing]
	// user.registered -> [ep_audit ep_crm]
	// invoice.paid    -> [ep_audit ep_billing]
	// user.deleted    -> [ep_audit]
	// https://audit.example.com/hook 4
	// https://billing.example.com/hook 2
	// https://crm.example.com/hook 1
}

// A failed attempt is retried on the policy's schedule until the receiver accepts it.
func ExampleWithRetryPolicy() {
	ctx := context.Background()
	tr := webhooktest.NewTransport()
	tr.Script("https://example.com/hook",
		webhooktest.Status(http.StatusServiceUnavailable),
		webhooktest.Status(http.StatusInternalServerError),
		webhooktest.Status(http.StatusNoContent))
	reports := make(chan webhook.AttemptReport, 3)

	s, err := webhook.NewSender(
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_1", URL: "https://example.com/hook", Secret: webhook.NewSecret()}),
		webhook.WithTransport(tr),
		webhook.WithRetryPolicy(webhook.RetryPolicy{
			Schedule:    webhook.FixedSchedule{10 * time.Millisecond}, // seconds to hours in production
			MaxAttempts: 5,
		}),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) { reports <- r }}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)

	if _, err := s.Send(ctx, webhook.Event{Type: "user.registered", Data: map[string]string{"id": "u_1"}}); err != nil {
		fmt.Println(err)
		return
	}
	var ids []string
	for _, r := range waitReports(reports, 3) {
		fmt.Printf("attempt %d: %d %s, final %t\n", r.Delivery.Attempts, r.Attempt.StatusCode, r.Verdict, r.Final)
		ids = append(ids, tr.Requests()[r.Delivery.Attempts-1].Header.Get(webhook.HeaderID))
	}
	fmt.Println("same webhook-id on every attempt:", ids[0] == ids[1] && ids[1] == ids[2])
	// Output:
	// attempt 1: 503 retry, final false
	// attempt 2: 500 retry, final false
	// attempt 3: 204 delivered, final true
	// same webhook-id on every attempt: true
}

// Verify is the one-call check for a receiver with a single secret.
func ExampleVerify() {
	secret := webhook.NewSecret() // the endpoint's secret, shared with the receiver
	sec, err := webhook.ParseSecret(secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	body := []byte(`{"id":"msg_1","type":"user.registered","timestamp":"2026-01-02T15:04:05Z","version":"1","data":{}}`)
	h := http.Header{}
	msg := webhook.Message{ID: "msg_1", Timestamp: time.Now(), Body: body}
	if err := (webhook.StandardSigner{}).Sign(h, msg, []webhook.Secret{sec}); err != nil {
		fmt.Println(err)
		return
	}

	fmt.Println(webhook.Verify(secret, h, body))
	err = webhook.Verify(secret, h, []byte(strings.Replace(string(body), "msg_1", "msg_2", 1)))
	fmt.Println(errors.Is(err, webhook.ErrNoMatchingSignature))
	err = webhook.Verify(webhook.NewSecret(), h, body)
	fmt.Println(errors.Is(err, webhook.ErrNoMatchingSignature))
	// Output:
	// <nil>
	// true
	// true
}

// StandardSigner reproduces the Standard Webhooks specification's example signature.
func ExampleStandardSigner() {
	sec, err := webhook.ParseSecret(specSecret)
	if err != nil {
		fmt.Println(err)
		return
	}
	h := http.Header{}
	msg := webhook.Message{ID: specID, Timestamp: time.Unix(specTimestamp, 0), Body: []byte(specPayload)}
	if err := (webhook.StandardSigner{}).Sign(h, msg, []webhook.Secret{sec}); err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature} {
		fmt.Printf("%s: %s\n", name, h.Get(name))
	}
	// Output:
	// webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek
	// webhook-timestamp: 1614265330
	// webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// A receiver's handler verifies the request before it trusts the body.
func ExampleVerifier_VerifyRequest() {
	v, err := webhook.NewVerifier(specSecret)
	if err != nil {
		fmt.Println(err)
		return
	}
	v.Now = func() time.Time { return time.Unix(specTimestamp, 0) } // the vector is from 2021

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := v.VerifyRequest(r, 64<<10)
		if err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		fmt.Println("verified body:", string(body))
		w.WriteHeader(http.StatusNoContent)
	})

	for _, payload := range []string{specPayload, `{"test": 1}`} {
		req := httptest.NewRequest(http.MethodPost, "/webhooks", strings.NewReader(payload))
		req.Header.Set("webhook-id", specID)
		req.Header.Set("webhook-timestamp", fmt.Sprint(specTimestamp))
		req.Header.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		fmt.Println(w.Code)
	}
	// Output:
	// verified body: {"test": 2432232314}
	// 204
	// 401
}

// HexSigner signs like GitHub: one header with the hex HMAC-SHA256 of the body.
func ExampleHexSigner() {
	sec, err := webhook.ParseSecret(specSecret)
	if err != nil {
		fmt.Println(err)
		return
	}
	// To sign this way, pass the signer to webhook.WithSigner, or set Endpoint.Signer.
	signer := webhook.HexSigner{Header: "X-Hub-Signature-256", Prefix: "sha256="}
	body := []byte(`{"action":"opened"}`)
	h := http.Header{}
	if err := signer.Sign(h, webhook.Message{ID: "msg_1", Timestamp: time.Unix(specTimestamp, 0), Body: body}, []webhook.Secret{sec}); err != nil {
		fmt.Println(err)
		return
	}
	got := h.Get("X-Hub-Signature-256")
	fmt.Println("X-Hub-Signature-256:", got)

	// A GitHub-style receiver checks it with the decoded key of the whsec_ secret.
	mac := hmac.New(sha256.New, sec.HMACKey())
	mac.Write(body)
	fmt.Println(hmac.Equal([]byte(got), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))))
	// Output:
	// X-Hub-Signature-256: sha256=9d394b4bf33fbdc367f33ca12b4a29dcd5ed7f775eff1c9e88bf2e22e28d8148
	// true
}

func ExampleNewSecret() {
	secret := webhook.NewSecret() // random: store it with the endpoint, show it once to its owner
	fmt.Println(strings.HasPrefix(secret, webhook.SecretPrefix), len(secret))

	sec, err := webhook.ParseSecret(secret)
	if err != nil {
		fmt.Println(err)
		return
	}
	// A parsed Secret never prints its key, whatever the verb.
	fmt.Println(sec, len(sec.HMACKey()))
	fmt.Printf("%x %#v\n", sec, sec)
	// Output:
	// true 50
	// whsec_[redacted] 32
	// whsec_[redacted] whsec_[redacted]
}

// StandardWebhooksSchedule is the retry table of the Standard Webhooks guidance.
func ExampleRetryPolicy() {
	policy := webhook.RetryPolicy{
		Schedule:    webhook.StandardWebhooksSchedule(),
		MaxAttempts: len(webhook.StandardWebhooksSchedule()) + 1, // the first attempt and one per delay
		MaxAge:      48 * time.Hour,
	}
	// The Sender takes it with webhook.WithRetryPolicy(policy).
	for n := 1; n < policy.MaxAttempts; n++ {
		fmt.Printf("retry %d after %s\n", n, policy.Schedule.Delay(n))
	}
	// Output:
	// retry 1 after 5s
	// retry 2 after 5m0s
	// retry 3 after 30m0s
	// retry 4 after 2h0m0s
	// retry 5 after 5h0m0s
	// retry 6 after 10h0m0s
	// retry 7 after 10h0m0s
}

func ExampleFixedSchedule() {
	s := webhook.FixedSchedule{time.Second, 10 * time.Second, time.Minute}
	for n := 1; n <= 5; n++ {
		fmt.Print(s.Delay(n), " ")
	}
	fmt.Println()
	// Output:
	// 1s 10s 1m0s 1m0s 1m0s
}

func ExampleDefaultClassifier() {
	for _, status := range []int{200, 204, 301, 401, 404, 410, 429, 500, 503} {
		fmt.Println(status, webhook.DefaultClassifier(status, nil))
	}
	fmt.Println("timeout", webhook.DefaultClassifier(0, context.DeadlineExceeded))
	fmt.Println("refused by policy", webhook.DefaultClassifier(0, &webhook.PermanentError{Err: errors.New("private address")}))
	// Output:
	// 200 delivered
	// 204 delivered
	// 301 retry
	// 401 retry
	// 404 retry
	// 410 gone
	// 429 retry
	// 500 retry
	// 503 retry
	// timeout retry
	// refused by policy permanent
}

func ExampleParseRetryAfter() {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, v := range []string{
		"120",
		"Fri, 02 Jan 2026 15:34:05 GMT", // an HTTP date, 30 minutes after now
		"Fri, 02 Jan 2026 14:00:00 GMT", // in the past: retry now
		"",
		"-5",
		"soon",
	} {
		d, ok := webhook.ParseRetryAfter(v, now)
		fmt.Printf("%q: %s %t\n", v, d, ok)
	}
	// Output:
	// "120": 2m0s true
	// "Fri, 02 Jan 2026 15:34:05 GMT": 30m0s true
	// "Fri, 02 Jan 2026 14:00:00 GMT": 0s true
	// "": 0s false
	// "-5": 0s false
	// "soon": 0s false
}

func ExampleMatchEventType() {
	filters := [][]string{nil, {"*"}, {"order.created"}, {"order.*"}, {"user.*", "order.created"}}
	for _, f := range filters {
		fmt.Printf("%-26s", fmt.Sprintf("%q", f))
		for _, typ := range []string{"order", "order.created", "order.item.added", "user.deleted"} {
			fmt.Print(" ", webhook.MatchEventType(f, typ))
		}
		fmt.Println()
	}
	// Output:
	// []                         true true true true
	// ["*"]                      true true true true
	// ["order.created"]          false true false false
	// ["order.*"]                false true true false
	// ["user.*" "order.created"] false true false true
}
