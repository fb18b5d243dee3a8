-- hooksmith delivery queue, version 2: the attempt log without a foreign key.
-- Every attempt row is inserted from the UPDATE of its delivery in the same statement,
-- and Prune deletes a delivery's attempts with it, so the key checked nothing the store
-- does not already guarantee; its check on every recorded attempt was about 5% of the
-- database's time at full speed.

ALTER TABLE "{{schema}}"."{{prefix}}attempts" DROP CONSTRAINT IF EXISTS "{{prefix}}attempts_delivery_id_fkey";
