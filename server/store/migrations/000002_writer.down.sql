DROP FUNCTION posfleet_fence(bigint);
DROP TABLE posfleet_writer;
