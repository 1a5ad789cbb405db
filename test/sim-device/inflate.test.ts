import { strict as assert } from 'assert';
import * as fs from 'fs';
import { deflateSync } from 'zlib';
import { buildAppImage } from '../../lib/image/builder';
import { InflateError, StreamInflater } from '../../lib/sim/device';
import { vectorPath } from './harness';
import { hasVectors, skipWithoutVectors } from '../helpers/paths';

function inflateInPieces(stream: Buffer, piece: number): { out: Buffer; inflater: StreamInflater } {
  const inflater = new StreamInflater();
  const parts: Buffer[] = [];
  for (let i = 0; i < stream.length; i += piece) parts.push(Buffer.from(inflater.push(stream.subarray(i, i + piece))));
  return { out: Buffer.concat(parts), inflater };
}

describe('sim-device streaming inflate', () => {
  const sources: Array<[string, Buffer]> = [
    ['synthetic app image', buildAppImage({ chip: 'esp32c3', version: '1.0.0', size: 96 * 1024 })],
    ...(hasVectors() ? ([['real hello_world', fs.readFileSync(vectorPath('esp32-hello_world.bin'))]] as Array<[string, Buffer]>) : []),
    ['zeros (long matches)', Buffer.alloc(70000)],
    ['empty', Buffer.alloc(0)],
  ];
  if (!hasVectors()) it('decodes the real hello_world', function () {
    skipWithoutVectors(this);
  });
  for (const [name, source] of sources) {
    for (const level of [0, 1, 9]) {
      it(`decodes ${name} at level ${level} fed in 1, 13, 508-byte and whole pieces`, () => {
        const stream = deflateSync(source, { level });
        for (const piece of [1, 13, 508, stream.length || 1]) {
          const { out, inflater } = inflateInPieces(stream, piece);
          assert.ok(out.equals(source), `piece ${piece}`);
          assert.ok(inflater.finished);
          assert.equal(inflater.totalOutput, source.length);
        }
      });
    }
  }

  it('reports an unfinished stream as not finished', () => {
    const stream = deflateSync(Buffer.alloc(5000, 3));
    const inflater = new StreamInflater();
    inflater.push(stream.subarray(0, stream.length - 2));
    assert.equal(inflater.finished, false);
  });

  it('rejects a bad header, a wrong Adler-32, corrupt data and bytes after the end', () => {
    assert.throws(() => new StreamInflater().push(Buffer.from('hello world')), InflateError);
    const stream = Buffer.from(deflateSync(Buffer.from('some data some data some data')));
    const badAdler = Buffer.from(stream);
    badAdler[badAdler.length - 1] ^= 1;
    assert.throws(() => new StreamInflater().push(badAdler), /Adler-32/);
    assert.throws(() => new StreamInflater().push(Buffer.concat([stream, Buffer.from([0])])), /after the end/);
    const big = Buffer.from(deflateSync(buildAppImage({ chip: 'esp32', version: '1.0.0', size: 32 * 1024 })));
    for (let i = 100; i < 140; i++) big[i] ^= 0xa5;
    assert.throws(() => new StreamInflater().push(big), InflateError);
  });
});
