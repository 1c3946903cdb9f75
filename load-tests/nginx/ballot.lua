-- wrk script: POST one small JSON ballot on every request. wrk counts every answer that is
-- not 2xx/3xx as "Non-2xx or 3xx responses": here, the 429s (plus the few requests inside
-- the burst).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"election":"bench","alg":"ed25519","voter":"v","seq":1,"payload":"p","sig":"s"}'
