<?php

namespace Soa;

/**
 * Token bucket for retries after the request was sent, as in the Python client: each call
 * deposits $ratio tokens (at most $cap), each retry withdraws one, and a reserve of
 * $minPerSecond retries per second lets a quiet client still retry. Lives with its Client.
 */
final class RetryBudget
{
    private float $balance = 0.0;
    private float $reserve;
    private float $refilled;

    public function __construct(private float $ratio = 0.1, private float $minPerSecond = 10.0, private ?float $cap = null)
    {
        $this->cap ??= max(10.0, $ratio * 1000);
        $this->reserve = $minPerSecond;
        $this->refilled = microtime(true);
    }

    public function deposit(): void
    {
        $this->balance = min($this->cap, $this->balance + $this->ratio);
    }

    /** Takes one retry token; false when the budget is spent. */
    public function withdraw(): bool
    {
        if ($this->balance >= 0.999999) {
            $this->balance -= 1.0;
            return true;
        }
        $now = microtime(true);
        $this->reserve = min($this->minPerSecond, $this->reserve + ($now - $this->refilled) * $this->minPerSecond);
        $this->refilled = $now;
        if ($this->reserve >= 1.0) {
            $this->reserve -= 1.0;
            return true;
        }
        return false;
    }
}
