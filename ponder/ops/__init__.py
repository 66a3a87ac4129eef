"""Operations: metrics, alerts, the cron schedule and the retention purge."""
