// Runs the Lotus SDK's Schnorr and MuSig2 code (npm `xpi-ts`, pinned in
// package-lock.json) for crates/lotus-musig2:
//
//   node xpi.mjs vectors        prints the test vectors checked into
//                               crates/lotus-musig2/tests/vectors/ (JSON)
//   node xpi.mjs check < req    answers a cross-check request (JSON on stdin,
//                               JSON on stdout), see `check` below
//
// Everything here calls the SDK's own functions; nothing re-implements them.
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';

const require = createRequire(import.meta.url);
const sdk = require('xpi-ts/lib/bitcore');
const {
  BN,
  Point,
  PrivateKey,
  PublicKey,
  Schnorr,
  Signature,
  muSig2KeyAgg,
  muSig2NonceGen,
  muSig2NonceAgg,
  muSig2PartialSign,
  muSig2PartialSigVerify,
  muSig2SigAgg,
} = sdk;

const N = Point.getN();
const hex32 = bn => bn.umod(N).toBuffer({ size: 32 }).toString('hex');
const sha256 = s => createHash('sha256').update(s).digest();

function privFromHex(h) {
  return new PrivateKey(new BN(Buffer.from(h, 'hex')));
}
function pubFromHex(h) {
  return PublicKey.fromBuffer(Buffer.from(h, 'hex'));
}
function pubHex(pk) {
  return pk.toBuffer().toString('hex');
}
function pointHex(p) {
  return Point.pointToCompressed(p).toString('hex');
}

/** A valid secret key derived from a label (SHA-256, below n for every label used). */
function fixedSecret(label) {
  const bn = new BN(sha256(`lotus-musig2 vector ${label}`));
  if (bn.isZero() || bn.gte(N)) throw new Error(`label ${label} gives an invalid key`);
  return bn.toBuffer({ size: 32 }).toString('hex');
}

function keyAgg(pubHexes) {
  const ctx = muSig2KeyAgg(pubHexes.map(pubFromHex));
  return {
    ctx,
    json: {
      sortedKeys: ctx.pubkeys.map(pubHex),
      coefficients: ctx.pubkeys.map(pk => hex32(ctx.keyAggCoeff.get(pk.toString()))),
      aggregatedKey: pubHex(ctx.aggregatedPubKey),
    },
  };
}

function schnorrSign(secretHex, msgHex) {
  const sig = Schnorr.sign(Buffer.from(msgHex, 'hex'), privFromHex(secretHex));
  return sig.toBuffer('schnorr').toString('hex');
}
function schnorrVerify(pubHexStr, msgHex, sigHex) {
  try {
    const sig = Signature.fromSchnorr(Buffer.from(sigHex, 'hex'));
    return Schnorr.verify(Buffer.from(msgHex, 'hex'), sig, pubFromHex(pubHexStr));
  } catch {
    return false;
  }
}

/**
 * A full MuSig2 session with the SDK: one slot per sorted key, each slot's
 * nonces from muSig2NonceGen with the given extra input (so the run is
 * reproducible), partial signatures, their verification and aggregation.
 */
function session(secretHexes, msgHex, extraInputs) {
  const privs = secretHexes.map(privFromHex);
  const { ctx, json } = keyAgg(privs.map(p => pubHex(p.toPublicKey())));
  const msg = Buffer.from(msgHex, 'hex');
  // Slots follow the sorted key order; a secret key fills each slot of its key.
  const slots = ctx.pubkeys.map(pk => privs.find(p => p.toPublicKey().toString() === pk.toString()));
  const nonces = slots.map((priv, i) =>
    muSig2NonceGen(priv, ctx.aggregatedPubKey, msg, extraInputs ? Buffer.from(extraInputs[i], 'hex') : undefined),
  );
  const aggNonce = muSig2NonceAgg(nonces.map(n => n.publicNonces));
  const partials = slots.map((priv, i) => muSig2PartialSign(nonces[i], priv, ctx, i, aggNonce, msg));
  const partialValid = partials.map((s, i) =>
    muSig2PartialSigVerify(s, nonces[i].publicNonces, ctx.pubkeys[i], ctx, i, aggNonce, msg),
  );
  const sig = muSig2SigAgg(partials, aggNonce, msg, ctx.aggregatedPubKey);
  const sigHex = sig.toBuffer('schnorr').toString('hex');
  // Recompute R = R1 + b·R2 only to report which branch the SDK took.
  const b = new BN(
    sdk.muSig2TaggedHash(
      'MuSig/noncecoef',
      Buffer.concat([ctx.aggregatedPubKey.toBuffer(), Point.pointToCompressed(aggNonce.R1), Point.pointToCompressed(aggNonce.R2), msg]),
    ),
  );
  const R = aggNonce.R1.add(aggNonce.R2.mul(b));
  return {
    keys: privs.map(p => pubHex(p.toPublicKey())),
    ...json,
    message: msgHex,
    slots: slots.map((priv, i) => ({
      secretKey: priv.bn.toBuffer({ size: 32 }).toString('hex'),
      secNonce: [hex32(nonces[i].secretNonces[0]), hex32(nonces[i].secretNonces[1])],
      pubNonce: pointHex(nonces[i].publicNonces[0]) + pointHex(nonces[i].publicNonces[1]),
      partialSignature: hex32(partials[i]),
      partialValid: partialValid[i],
    })),
    aggNonce: pointHex(aggNonce.R1) + pointHex(aggNonce.R2),
    nonceNegated: !R.hasSquare(),
    signature: sigHex,
    verifies: schnorrVerify(json.aggregatedKey, msgHex, sigHex),
  };
}

function vectors() {
  const sk = Array.from({ length: 15 }, (_, i) => fixedSecret(`key ${i}`));
  const pk = sk.map(s => pubHex(privFromHex(s).toPublicKey()));
  const sorted = [...pk].sort();
  const [a, b, c] = sorted; // the three smallest keys, a < b < c
  const smallestIndex = pk.indexOf(a);
  const keySets = [
    { name: 'single key (not mapped to itself)', keys: [pk[0]] },
    { name: 'two keys', keys: [pk[0], pk[1]] },
    { name: 'two keys, reversed input', keys: [pk[1], pk[0]] },
    { name: 'three keys', keys: [pk[0], pk[1], pk[2]] },
    { name: 'five keys, unsorted input', keys: [pk[4], pk[2], pk[0], pk[3], pk[1]] },
    { name: 'fifteen keys', keys: pk },
    { name: 'first two sorted keys equal', keys: [b, a, a] },
    { name: 'two equal keys only', keys: [a, a] },
    { name: 'smallest key three times', keys: [a, a, a] },
    { name: 'smallest key three times and another', keys: [a, b, a, a] },
    { name: 'duplicate that is not the smallest', keys: [c, a, c] },
    { name: 'duplicate with three others', keys: [a, b, c, b] },
  ];
  const keyagg = keySets.map(({ name, keys }) => ({ name, keys, ...keyAgg(keys).json }));

  const messages = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    ...Array.from({ length: 6 }, (_, i) => sha256(`lotus-musig2 message ${i}`).toString('hex')),
  ];
  const schnorr = [];
  for (let i = 0; i < 8; i++) {
    const secretKey = sk[i];
    const message = messages[i];
    const signature = schnorrSign(secretKey, message);
    schnorr.push({ secretKey, publicKey: pk[i], message, signature, valid: schnorrVerify(pk[i], message, signature) });
  }
  // Signatures the SDK rejects: a flipped bit in r, in s, in the message, the wrong key,
  // r = p, s = n.
  const P_HEX = 'fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f';
  const N_HEX = N.toBuffer({ size: 32 }).toString('hex');
  const flip = (h, byte) => {
    const buf = Buffer.from(h, 'hex');
    buf[byte] ^= 1;
    return buf.toString('hex');
  };
  const s0 = schnorr[2];
  const invalid = [
    { name: 'bit flipped in r', publicKey: s0.publicKey, message: s0.message, signature: flip(s0.signature, 5) },
    { name: 'bit flipped in s', publicKey: s0.publicKey, message: s0.message, signature: flip(s0.signature, 40) },
    { name: 'bit flipped in message', publicKey: s0.publicKey, message: flip(s0.message, 0), signature: s0.signature },
    { name: 'other key', publicKey: pk[9], message: s0.message, signature: s0.signature },
    { name: 'r = p', publicKey: s0.publicKey, message: s0.message, signature: P_HEX + s0.signature.slice(64) },
    { name: 's = n', publicKey: s0.publicKey, message: s0.message, signature: s0.signature.slice(0, 64) + N_HEX },
  ].map(v => ({ ...v, valid: schnorrVerify(v.publicKey, v.message, v.signature) }));

  // MuSig2 sessions with reproducible nonces (the SDK derives them from the
  // secret key, aggregated key, message and extra input). Both nonce branches
  // (aggregate R.y a residue or not) are covered.
  const sessions = [];
  const plans = [
    { name: 'two signers', keys: [0, 1] },
    { name: 'three signers', keys: [2, 0, 1] },
    { name: 'five signers', keys: [3, 4, 5, 6, 7] },
    { name: 'duplicate key (one holder, two slots)', keys: [0, 1, 0] },
    { name: 'smallest key twice (second-key coefficient 1)', keys: [smallestIndex, 3, smallestIndex] },
    { name: 'fifteen signers', keys: [...Array(15).keys()] },
  ];
  for (const { name, keys } of plans) {
    const seen = new Set();
    for (let attempt = 0; seen.size < 2 && attempt < 40; attempt++) {
      const msg = sha256(`lotus-musig2 session ${name} ${attempt}`).toString('hex');
      const extra = keys.map((_, i) => sha256(`lotus-musig2 extra ${name} ${attempt} ${i}`).toString('hex'));
      const s = session(keys.map(i => sk[i]), msg, extra);
      if (seen.has(s.nonceNegated)) continue;
      seen.add(s.nonceNegated);
      sessions.push({ name, ...s });
    }
  }
  return {
    source: 'xpi-ts 0.3.1 (npm), produced by interop/xpi-ts/xpi.mjs vectors',
    keyagg,
    schnorr,
    schnorrInvalid: invalid,
    musig2: sessions,
  };
}

/**
 * Request (all fields optional):
 *   keyagg:  [[pubkey hex, ...], ...]                    -> SDK aggregated keys
 *   verify:  [{publicKey, message, signature}, ...]      -> SDK Schnorr.verify results
 *   sign:    [{secretKey, message}, ...]                 -> SDK Schnorr.sign signatures
 *   musig2:  [{secretKeys: [hex...], message}, ...]      -> SDK sessions (random nonces)
 */
function check(req) {
  return {
    keyagg: (req.keyagg ?? []).map(keys => keyAgg(keys).json.aggregatedKey),
    verify: (req.verify ?? []).map(v => schnorrVerify(v.publicKey, v.message, v.signature)),
    sign: (req.sign ?? []).map(v => schnorrSign(v.secretKey, v.message)),
    musig2: (req.musig2 ?? []).map(v => {
      const s = session(v.secretKeys, v.message, undefined);
      return { aggregatedKey: s.aggregatedKey, signature: s.signature, verifies: s.verifies };
    }),
  };
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const mode = process.argv[2];
if (mode === 'vectors') {
  process.stdout.write(JSON.stringify(vectors(), null, 2) + '\n');
} else if (mode === 'check') {
  process.stdout.write(JSON.stringify(check(JSON.parse(await readStdin()))) + '\n');
} else {
  process.stderr.write('usage: node xpi.mjs vectors | node xpi.mjs check < request.json\n');
  process.exit(2);
}
