// W3's handler: burns about 0.2 ms of CPU. Loaded by the bus's worker
// isolates and by piscina alike.
'use strict';

// `event.ms` (W3 skewed) overrides the 0.2 ms.
function burn(event) {
  const end = performance.now() + (typeof event.ms === 'number' ? event.ms : 0.2);
  let x = 0;
  while (performance.now() < end) x++;
  return x > 0 ? event.n : -1;
}

module.exports = burn;
module.exports.burn = burn;
