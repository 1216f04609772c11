#!/usr/bin/perl
# Scenario B (rtpengine t/auto-daemon-tests.pl 'opus fmtp options, default'): a PCMA offer with
# transcode=opus gets opus at the first free dynamic PT with useinbandfec=1; an opus answer is
# transcoded; PCMA from the offerer reaches the answerer as opus and back.
use strict;
use warnings;
use NGCP::Rtpengine::AutoTest;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use BpAutoTest;

autotest_init() or die;


my ($sock_a, $sock_b) = new_call(['127.0.0.1', 0], ['127.0.0.1', 0]);
my ($pa, $pb) = ($sock_a->sockport, $sock_b->sockport);

my ($port_b) = offer('B: PCMA offer + transcode opus', { codec => { transcode => ['opus'] },
	ICE => 'remove', supports => ['load limit'] }, <<SDP);
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio $pa RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
----------------------------------
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 8 96
a=rtpmap:8 PCMA/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=sendrecv
SDP

my ($port_a) = answer('B: opus answer is transcoded', { ICE => 'remove' }, <<SDP);
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio $pb RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=sendrecv
----------------------------------
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=tester
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
SDP

isnt $port_a, $port_b, 'each leg has its own port';

# PCMA in on leg A, opus (PT 96, our own sequence and SSRC) out on leg B.
snd($sock_a, $port_a, rtp(8, 1000, 3000, 0x1234, "\xd5" x 160), '127.0.0.1');
rcv($sock_b, 0, pt_re(96, '.+'));
snd($sock_a, $port_a, rtp(8, 1001, 3160, 0x1234, "\xd5" x 160), '127.0.0.1');
rcv($sock_b, 0, pt_re(96, '.+'));

# Opus (a silence frame) in on leg B, 20 ms of PCMA out on leg A.
snd($sock_b, $port_b, rtp(96, 2000, 4000, 0x5678, "\xf8\xff\xfe"), '127.0.0.1');
rcv($sock_a, 0, pt_re(8, '.{160}'));

my $q = rtpe_req('query', 'B: query', { 'from-tag' => ft() });
ok $q->{totals}{RTP}{packets} >= 3, 'query totals count the packets';
ok exists $q->{tags}{ft()}, 'query names the offerer tag';
ok exists $q->{tags}{tt()}, 'query names the answerer tag';

my $d = rtpe_req('delete', 'B: delete', { 'from-tag' => ft() });
ok $d->{totals}{RTP}{packets} >= 3, 'delete reports final totals';
ok exists $d->{SSRC}, 'delete reports MOS per stream';

done_testing();
