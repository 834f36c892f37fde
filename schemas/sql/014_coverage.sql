-- Coverage (issue 13): the base-station registry's radio parameters and the stations' calibrations.
-- A station's environment class picks its path-loss model (radio/path_loss.py); its antenna height,
-- gain and cable loss enter the link budget (radio/link_budget.py). Defaults: a typical station.
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS antenna_height_m double precision NOT NULL DEFAULT 30;
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS antenna_gain_dbi double precision NOT NULL DEFAULT 6;
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS cable_loss_db double precision NOT NULL DEFAULT 2;
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS environment text NOT NULL DEFAULT 'urban';
ALTER TABLE base_stations ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
DO $$ BEGIN
    ALTER TABLE base_stations ADD CONSTRAINT base_stations_environment_check
        CHECK (environment IN ('dense-urban', 'urban', 'suburban', 'rural'));
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- One fit per station: measured RSSI = predicted RSSI + offset_db + slope_db * log10(distance / 1 km),
-- fitted robustly on stored receptions of devices at known positions (radio/calibration.py). The
-- prediction uses a fit only when `receptions` reaches the documented minimum.
CREATE TABLE IF NOT EXISTS station_calibrations (
    station_id        text PRIMARY KEY REFERENCES base_stations(id) ON DELETE CASCADE,
    offset_db         double precision NOT NULL,
    slope_db          double precision NOT NULL,
    receptions        int NOT NULL,               -- receptions the fit used
    held_out          int NOT NULL,               -- receptions kept aside to judge it
    rmse_before_db    double precision,           -- on the held-out receptions, uncalibrated
    rmse_after_db     double precision,           -- on the held-out receptions, calibrated
    bias_before_db    double precision,
    bias_after_db     double precision,
    fitted_at         timestamptz NOT NULL DEFAULT now()
);
