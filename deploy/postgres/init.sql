-- Databases of one refrig-assets deployment, created once on an empty server: by the postgres
-- image's entrypoint in docker-compose.yml, and by scripts/postgres_start.sh without Docker.
CREATE DATABASE dagster;        -- Dagster runs, event log, schedules/sensors, run queue
CREATE DATABASE refrig_alerts;  -- alert lifecycle (REFRIG_ALERTS_DB_URL)
CREATE DATABASE mlflow;         -- MLflow tracking + model registry (artifacts stay on the volume)
