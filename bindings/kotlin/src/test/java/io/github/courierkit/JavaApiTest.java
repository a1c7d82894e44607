package io.github.courierkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.courierkit.ffi.Bus;
import io.github.courierkit.ffi.Client;
import io.github.courierkit.ffi.Consumer;
import io.github.courierkit.ffi.CourierException;
import io.github.courierkit.ffi.Delivery;
import io.github.courierkit.ffi.Request;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.UUID;
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
}
