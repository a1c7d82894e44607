package io.github.courierkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import io.github.courierkit.ffi.Batch;
import io.github.courierkit.ffi.BatchMessage;
import io.github.courierkit.ffi.Bus;
import io.github.courierkit.ffi.Client;
import io.github.courierkit.ffi.Consumer;
import io.github.courierkit.ffi.CourierException;
import io.github.courierkit.ffi.Delivery;
import io.github.courierkit.ffi.PublishResult;
import io.github.courierkit.ffi.Receipt;
import io.github.courierkit.ffi.Request;
import io.github.courierkit.ffi.Response;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Scope;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The API as plain Java sees it: typed config builders, java.time.Duration, CompletableFuture. */
@Timeout(30)
class JavaApiTest {
    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void aCallBuiltInJavaFailsByItsTypedError() throws Exception {
        // Port 1 refuses connections: the call fails fast, by type, through the future.
        ClientConfig config = ClientConfig.builder()
            .services(Collections.singletonMap("down", ServiceConfig.builder()
                .endpoints(Collections.singletonList(Endpoint.builder("http://127.0.0.1:1").build()))
                .retry(RetryConfig.builder().maxAttempts(1L).build())
                .build()))
            .build();
        Client client = new Client(config.toJson());
        try {
            Request request = CourierJava.requestBuilder("GET", "down").path("/x").deadline(Duration.ofSeconds(2)).build();
            ExecutionException failed = assertThrows(ExecutionException.class, () -> CourierJava.call(client, request).get(10, TimeUnit.SECONDS));
            assertInstanceOf(CourierException.Connect.class, failed.getCause());
        } finally {
            client.shutdown();
            client.close();
        }
    }

    @Test
    void durationsAreJavaDurations() {
        assertEquals(Duration.ofMillis(1500), CourierJava.deadlineFromHeaders(Collections.singletonMap("x-courier-deadline-ms", "1500")));
        CourierException.Config bad = assertThrows(CourierException.Config.class, () -> CourierJava.configureTelemetry(null, null, null, null, null, true, Duration.ZERO));
        assertEquals("metrics_interval_ms", bad.getField());
    }

    @Test
    void publishConsumeAckAndCancelAWaitingNext() throws Exception {
        BusConfig config = BusConfig.builder(Collections.singletonList("memory://java-" + UUID.randomUUID())).prefetch(10L).build();
        Bus bus = CourierJava.connect(config.toJson()).get(10, TimeUnit.SECONDS);
        try {
            CourierJava.declareQueue(bus, "orders", CourierJava.queueOptionsBuilder().quorum(false).ttl(Duration.ofMinutes(1)).build()).get();
            Consumer consumer = CourierJava.consume(bus, "orders").get();
            CourierJava.publish(bus, "", "orders", utf8("java"), CourierJava.publishOptionsBuilder().messageId("j-1").ttl(Duration.ofSeconds(30)).build()).get();
            Delivery delivery = CourierJava.next(consumer, Duration.ofSeconds(5)).get();
            assertEquals("java", new String(delivery.body(), StandardCharsets.UTF_8));
            assertEquals("j-1", delivery.messageId());
            Duration left = CourierJava.remaining(delivery);
            assertTrue(left != null && !left.isNegative() && left.compareTo(Duration.ofSeconds(30)) <= 0, String.valueOf(left));
            CourierJava.ack(delivery).get();

            // Cancelling the future cancels the coroutine, hence the waiting next in core
            // (what it releases is tested from Kotlin: CancelTest, CancelTokenTest). Last in
            // the test: a delivery arriving while the cancel is under way could be taken by
            // the abandoned call (a known limit of every host's cancellation).
            CompletableFuture<Delivery> waiting = CourierJava.next(consumer, Duration.ofSeconds(20));
            assertTrue(waiting.cancel(true));
            assertThrows(CancellationException.class, waiting::get);
            CourierJava.shutdown(consumer).get();
        } finally {
            CourierJava.shutdown(bus).get();
            bus.close();
        }
    }

    private static final String TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

    /** A valid span made current on this thread (the API alone: no SDK needed). */
    private static Scope currentSpan() {
        SpanContext context = SpanContext.create(TRACE_ID, "00f067aa0ba902b7", TraceFlags.getSampled(), TraceState.getDefault());
        return Span.wrap(context).makeCurrent();
    }

    private static Bus memoryBus() throws Exception {
        BusConfig config = BusConfig.builder(Collections.singletonList("memory://java-" + UUID.randomUUID())).prefetch(10L).build();
        return CourierJava.connect(config.toJson()).get(10, TimeUnit.SECONDS);
    }

    @Test
    void aResponseItsAttemptsAndTheClientStatsReadAsJavaNumbers() throws Exception {
        // The JDK's own server on loopback: a 503 first, then 200s.
        AtomicInteger seen = new AtomicInteger();
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", exchange -> {
            int status = seen.getAndIncrement() == 0 ? 503 : 200;
            exchange.sendResponseHeaders(status, -1);
            exchange.close();
        });
        server.start();
        String url = "http://127.0.0.1:" + server.getAddress().getPort();
        Client client = new Client(ClientConfig.builder()
            .services(Collections.singletonMap("java-stats", ServiceConfig.builder()
                .endpoints(Collections.singletonList(Endpoint.builder(url).build())).build()))
            .build().toJson());
        try {
            Response response;
            try (Scope ignored = currentSpan()) {
                // The span is read here, on the caller's thread, not in the future's coroutine.
                response = CourierJava.call(client, CourierJava.requestBuilder("GET", "java-stats").path("/x").build()).get(10, TimeUnit.SECONDS);
            }
            assertEquals(200, CourierJava.status(response));
            assertEquals(2, CourierJava.attempts(response));
            assertTrue(response.getTrace().get("traceparent").contains(TRACE_ID), response.getTrace().toString());

            Map<String, Object> stats = CourierJava.stats(client);
            @SuppressWarnings("unchecked")
            Map<String, Object> service = (Map<String, Object>) ((Map<String, Object>) stats.get("services")).get("java-stats");
            assertEquals(1L, service.get("requests"), service.toString());
            assertEquals(2L, service.get("attempts"), service.toString());
            assertEquals(1L, service.get("retries"), service.toString());
            assertEquals(0L, service.get("inFlight"), service.toString());
            @SuppressWarnings("unchecked")
            List<Map<String, Object>> endpoints = (List<Map<String, Object>>) service.get("endpoints");
            assertEquals(url + "/", endpoints.get(0).get("url"));
            assertEquals(2L, endpoints.get(0).get("requests"), endpoints.toString());
            assertEquals(Boolean.FALSE, endpoints.get(0).get("ejected"));
            assertInstanceOf(Double.class, endpoints.get(0).get("ewmaMs"));
            assertInstanceOf(Long.class, endpoints.get(0).get("weight"));
        } finally {
            client.shutdown();
            client.close();
            server.stop(0);
        }
    }

    @Test
    void publishManyNextBatchSettlementAndForward() throws Exception {
        Bus bus = memoryBus();
        try {
            CourierJava.declareQueue(bus, "batched", CourierJava.queueOptionsBuilder().quorum(false).build()).get();
            List<BatchMessage> messages = Arrays.asList(
                new BatchMessage("", "batched", utf8("one"), CourierJava.publishOptionsBuilder().messageId("b-1").build()),
                new BatchMessage("", "batched", utf8("two"), CourierJava.publishOptionsBuilder().messageId("b-2").build()),
                new BatchMessage("", "no-such-queue", utf8("lost"), CourierJava.publishOptionsBuilder().build()));
            List<PublishResult> results;
            try (Scope ignored = currentSpan()) {
                results = CourierJava.publishMany(bus, messages).get(10, TimeUnit.SECONDS);
            }
            assertEquals(3, results.size());
            Receipt first = ((PublishResult.Confirmed) results.get(0)).getReceipt();
            assertEquals("b-1", first.getMessageId());
            assertTrue(first.getTrace().get("traceparent").contains(TRACE_ID), first.getTrace().toString());
            assertInstanceOf(PublishResult.Confirmed.class, results.get(1));
            assertInstanceOf(CourierException.Unroutable.class, ((PublishResult.Failed) results.get(2)).getError());

            Consumer consumer = CourierJava.consume(bus, "batched", 5, true).get();
            // Returns as soon as two have come (both were confirmed before).
            Batch batch = CourierJava.nextBatch(consumer, 2, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
            List<Delivery> deliveries = batch.deliveries();
            assertEquals(2, deliveries.size());
            assertEquals("b-1", deliveries.get(0).messageId());
            assertEquals("b-2", deliveries.get(1).messageId());
            assertEquals(null, CourierJava.deliveryCount(deliveries.get(1)), "a classic queue counts no deliveries");
            CourierJava.reject(deliveries.get(0)).get();
            // The next workflow step, under an id derived from this one; this one acked.
            CourierJava.declareQueue(bus, "next-step", CourierJava.queueOptionsBuilder().quorum(false).build()).get();
            Receipt forwarded = CourierJava.forward(deliveries.get(1), "", "next-step", utf8("two, done")).get(10, TimeUnit.SECONDS);
            CourierJava.ack(batch).get();
            assertTrue(deliveries.stream().allMatch(Delivery::isSettled));
            Consumer next = CourierJava.consume(bus, "next-step").get();
            Delivery step = CourierJava.next(next, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
            assertEquals("two, done", new String(step.body(), StandardCharsets.UTF_8));
            assertEquals(forwarded.getMessageId(), step.messageId());
            assertTrue(!"b-2".equals(step.messageId()), step.messageId());
            CourierJava.ack(step).get();
            CourierJava.shutdown(next).get();

            Map<String, Object> stats = CourierJava.stats(bus);
            assertEquals(4L, stats.get("published"), stats.toString());
            assertEquals(3L, stats.get("delivered"), stats.toString());
            assertEquals(2L, stats.get("acked"), stats.toString());
            assertEquals(1L, stats.get("rejected"), stats.toString());
            assertEquals(1L, stats.get("returned"), stats.toString());

            // Only the conversion is checked in Java; core refuses what it does not allow.
            ExecutionException tooBig = assertThrows(ExecutionException.class, () -> CourierJava.consume(bus, "batched", 70_000, null).get());
            assertEquals("prefetch", ((CourierException.Config) tooBig.getCause()).getField());
            ExecutionException zero = assertThrows(ExecutionException.class, () -> CourierJava.nextBatch(consumer, 0, Duration.ofMillis(10)).get());
            assertEquals("max", ((CourierException.Config) zero.getCause()).getField());
            CourierJava.shutdown(consumer).get();
        } finally {
            CourierJava.shutdown(bus).get();
            bus.close();
        }
    }

    @Test
    void aRequestIsServedAndRepliedTo() throws Exception {
        Bus bus = memoryBus();
        try {
            CourierJava.declareQueue(bus, "pricing", CourierJava.queueOptionsBuilder().quorum(false).build()).get();
            Consumer server = CourierJava.serve(bus, "pricing").get();
            CompletableFuture<Delivery> reply =
                CourierJava.request(bus, "pricing", utf8("price?"), Duration.ofSeconds(5), null, Collections.singletonMap("x-unit", "eur"));
            Delivery asked = CourierJava.next(server, Duration.ofSeconds(5)).get(10, TimeUnit.SECONDS);
            assertEquals("price?", new String(asked.body(), StandardCharsets.UTF_8));
            assertEquals("eur", asked.headers().get("x-unit"));
            CourierJava.reply(asked, utf8("42")).get();
            assertEquals("42", new String(reply.get(10, TimeUnit.SECONDS).body(), StandardCharsets.UTF_8));
            CourierJava.shutdown(server).get();
        } finally {
            CourierJava.shutdown(bus).get();
            bus.close();
        }
    }
}
