DROP TABLE posfleet_kv;
