#!lua
-- write_probe: declares it may write (a shebang without the no-writes flag)
-- and writes nothing. Redis 7 refuses such a script before running it exactly
-- when it would refuse a write for memory, so running it asks "would a write
-- be refused for memory now?" without writing.
--
-- KEYS none (it runs on whichever master it is sent to)
-- ARGV none
--
-- Reply 1.
return 1
