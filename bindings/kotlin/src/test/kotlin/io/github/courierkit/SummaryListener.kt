package io.github.courierkit

import org.junit.platform.engine.TestExecutionResult
import org.junit.platform.launcher.TestExecutionListener
import org.junit.platform.launcher.TestIdentifier
import org.junit.platform.launcher.TestPlan
import java.util.concurrent.atomic.AtomicInteger

/**
 * Prints one countable line per test run on the test JVM's stdout, which Maven shows even
 * with `-q` (surefire's own "Tests run:" summary is an INFO log line that `-q` hides):
 *
 *     courier-kotlin: tests: 8, passed: 8, failed: 0, skipped: 0
 *
 * `skipped` counts disabled tests and tests whose assumption failed (aborted); `failed`
 * counts every test that did not pass and was not skipped, including tests that
 * never ran because their class's `@BeforeAll` failed, plus failed `@AfterAll`s; so
 * `passed == tests` exactly when everything ran and passed.
 *
 * Registered through `META-INF/services/org.junit.platform.launcher.TestExecutionListener`.
 */
class SummaryListener : TestExecutionListener {
    private val passed = AtomicInteger()
    private val skipped = AtomicInteger()
    private val failedContainers = AtomicInteger()

    override fun executionSkipped(testIdentifier: TestIdentifier, reason: String) {
        if (testIdentifier.isTest) skipped.incrementAndGet()
    }

    override fun executionFinished(testIdentifier: TestIdentifier, testExecutionResult: TestExecutionResult) {
        val status = testExecutionResult.status
        val ok = status == TestExecutionResult.Status.SUCCESSFUL
        when {
            testIdentifier.isTest && ok -> passed.incrementAndGet()
            // A failed assumption (`assumeTrue`) aborts the test: it was skipped, not failed.
            testIdentifier.isTest && status == TestExecutionResult.Status.ABORTED -> skipped.incrementAndGet()
            !testIdentifier.isTest && !ok -> failedContainers.incrementAndGet()
        }
    }

    override fun testPlanExecutionFinished(testPlan: TestPlan) {
        val tests = testPlan.countTestIdentifiers { it.isTest }.toInt()
        val failed = tests - passed.get() - skipped.get() + failedContainers.get()
        println("courier-kotlin: tests: $tests, passed: ${passed.get()}, failed: $failed, skipped: ${skipped.get()}")
    }
}
