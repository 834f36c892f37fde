-- Contracts reach the stream too (daily uplink quota, downlink rights).
DROP TRIGGER IF EXISTS contract_infos_outbox ON contract_infos;
CREATE TRIGGER contract_infos_outbox AFTER INSERT OR UPDATE OR DELETE ON contract_infos
    FOR EACH ROW EXECUTE FUNCTION config_outbox_notify('contract');
