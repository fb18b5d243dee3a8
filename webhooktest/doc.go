// Package webhooktest provides test doubles for code that sends or receives webhooks
// with package webhook, in the spirit of net/http/httptest: they are real, small and need
// neither sleeps nor a network beyond loopback.
//
// # Sending without a network
//
// [Transport] is an in-memory http.RoundTripper. Give it to the code under test in place
// of its HTTP transport; it records every request ([Request]) and answers with responses
// scripted per URL ([Transport.Script]), so a test can make an endpoint fail twice and then
// succeed, time out, or hang up:
//
//	tr := webhooktest.NewTransport()
//	tr.Script("https://example.com/hook",
//		webhooktest.Status(503).WithHeader("Retry-After", "10"),
//		webhooktest.Hangup(),
//		webhooktest.Status(200))
//
// [Transport.Wait] blocks until the code under test has sent a number of requests.
//
// # Receiving over loopback
//
// [Receiver] is a real HTTP server on 127.0.0.1 that verifies Standard Webhooks signatures
// with webhook.Verifier, records every request as a [Delivery] and answers as scripted.
// Its counts of unique and duplicate webhook-id values help test at-least-once delivery.
//
// # Controlling time
//
// [Clock] is a fake webhook.Clock. Timers fire only when the test moves the clock with
// [Clock.Advance] or [Clock.Set]; [Clock.WaitForTimers] tells the test that the code under
// test is now waiting, so the next Advance is not lost:
//
//	clock := webhooktest.NewClock(time.Now())
//	// ... start the code under test with clock ...
//	if err := clock.WaitForTimers(ctx, 1); err != nil {
//		t.Fatal(err)
//	}
//	clock.Advance(time.Minute) // the retry is now due
//
// # Responses
//
// Transport and Receiver share the [Response] type: a status, headers, a body, a delay
// that honours the request's context, and two ways to fail ([Fail] and [Hangup]). Scripts
// play their responses in order and then repeat the last one.
//
// Every type in this package is safe for concurrent use, and every blocking call takes a
// context; give it a deadline so a broken test fails instead of hanging.
package webhooktest
