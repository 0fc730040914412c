import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CircuitBreaker, type CircuitState } from '../src/breaker.ts';

function breaker(failures = 3, cooldownMs = 1000) {
  let now = 0;
  const changes: CircuitState[] = [];
  const b = new CircuitBreaker({ failures, cooldownMs, now: () => now, onChange: (state) => changes.push(state) });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

describe('circuit breaker', () => {
  test('opens after the set number of failures in a row and refuses calls while open', () => {
    const { b, changes } = breaker(3);
    for (let i = 0; i < 2; i++) {
      assert.equal(b.allow(), true);
      b.failure();
    }
    assert.equal(b.state, 'closed');
    assert.equal(b.allow(), true);
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.allow(), false);
    assert.equal(b.retryInMs(), 1000);
    assert.deepEqual(changes, ['open']);
  });

  test('a success in between starts the count again', () => {
    const { b } = breaker(3);
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    assert.equal(b.state, 'closed');
  });

  test('after the cool-down exactly one probe goes through; its success closes the circuit', () => {
    const { b, changes, advance } = breaker(1, 1000);
    b.failure();
    advance(999);
    assert.equal(b.allow(), false);
    advance(1);
    assert.equal(b.allow(), true, 'the probe');
    assert.equal(b.state, 'half-open');
    assert.equal(b.allow(), false, 'only one probe at a time');
    b.success();
    assert.equal(b.state, 'closed');
    assert.equal(b.allow(), true);
    assert.deepEqual(changes, ['open', 'half-open', 'closed']);
  });

  test('a failed probe opens the circuit for another cool-down', () => {
    const { b, advance } = breaker(2, 500);
    b.failure();
    b.failure();
    advance(500);
    assert.equal(b.allow(), true);
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.retryInMs(), 500);
    assert.equal(b.allow(), false);
  });

  test('a probe that ends without a verdict lets the next call probe', () => {
    const { b, advance } = breaker(1, 100);
    b.failure();
    advance(100);
    assert.equal(b.allow(), true);
    b.neutral();
    assert.equal(b.state, 'half-open');
    assert.equal(b.allow(), true);
  });

  test('0 failures never opens it', () => {
    const { b } = breaker(0);
    for (let i = 0; i < 100; i++) b.failure();
    assert.equal(b.state, 'closed');
    assert.equal(b.allow(), true);
  });
});
