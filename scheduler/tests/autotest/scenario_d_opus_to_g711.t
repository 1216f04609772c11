#!/usr/bin/perl
# Scenario D (rtpengine 'opus fmtp options, accept default'): a WebRTC-style opus offer towards
# a G.711 trunk (transcode=PCMA, mask=opus): the trunk is offered PCMA only; its PCMA answer
# becomes an opus answer with the fmtp reflected; media both ways through the transcoder. Then
# re-offers keep the call: hold (0.0.0.0, sendonly) and a new port, same local port each time.
use strict;
use warnings;
use NGCP::Rtpengine::AutoTest;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use BpAutoTest;

autotest_init() or die;
my ($sock_o, $sock_g, $sock_o2) = new_call(['127.0.0.1', 0], ['127.0.0.1', 0], ['127.0.0.1', 0]);
my ($po, $pg, $po2) = map { $_->sockport } ($sock_o, $sock_g, $sock_o2);

my ($port_g) = offer('D: opus offer, transcode PCMA, mask opus',
	{ flags => ['codec-transcode-PCMA', 'codec-mask-opus'], ICE => 'remove' }, <<SDP);
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=webrtc
c=IN IP4 127.0.0.1
t=0 0
m=audio $po RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwxyz
a=sendrecv
----------------------------------
v=0
o=- 1545997027 1 IN IP4 127.0.0.1
s=webrtc
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
SDP

my ($port_o) = answer('D: PCMA answer becomes opus', {}, <<SDP);
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=trunk
c=IN IP4 127.0.0.1
t=0 0
m=audio $pg RTP/AVP 8
a=sendrecv
----------------------------------
v=0
o=- 1545997028 1 IN IP4 127.0.0.1
s=trunk
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=0; useinbandfec=1
a=sendrecv
SDP

snd($sock_g, $port_g, rtp(8, 1000, 3000, 0x1234, "\xd5" x 160), '127.0.0.1');
rcv($sock_o, 0, pt_re(96, '.+'));
snd($sock_o, $port_o, rtp(96, 2000, 4000, 0x5678, "\xf8\xff\xfe"), '127.0.0.1');
rcv($sock_g, 0, pt_re(8, '.{160}'));

# Hold from the opus side: same call, same port towards the trunk.
my ($hold_port) = offer('D: re-offer on hold', { flags => ['codec-transcode-PCMA', 'codec-mask-opus'],
	'to-tag' => tt() }, <<SDP);
v=0
o=- 1545997027 2 IN IP4 127.0.0.1
s=webrtc
c=IN IP4 0.0.0.0
t=0 0
m=audio $po RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=sendonly
----------------------------------
v=0
o=- 1545997027 2 IN IP4 127.0.0.1
s=webrtc
c=IN IP4 0.0.0.0
t=0 0
m=audio PORT RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendonly
SDP
is $hold_port, $port_g, 'hold keeps the port';
answer('D: hold answered', {}, <<SDP);
v=0
o=- 1545997028 2 IN IP4 127.0.0.1
s=trunk
c=IN IP4 127.0.0.1
t=0 0
m=audio $pg RTP/AVP 8
a=recvonly
----------------------------------
v=0
o=- 1545997028 2 IN IP4 127.0.0.1
s=trunk
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=0; useinbandfec=1
a=recvonly
SDP

# Resume from a new port: media goes to the new address.
my ($resume_port) = offer('D: re-offer from a new port', { flags => ['codec-transcode-PCMA', 'codec-mask-opus'],
	'to-tag' => tt() }, <<SDP);
v=0
o=- 1545997027 3 IN IP4 127.0.0.1
s=webrtc
c=IN IP4 127.0.0.1
t=0 0
m=audio $po2 RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=sendrecv
----------------------------------
v=0
o=- 1545997027 3 IN IP4 127.0.0.1
s=webrtc
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
SDP
is $resume_port, $port_g, 'a new remote port keeps our port';
my ($port_o_again) = answer('D: resumed', {}, <<SDP);
v=0
o=- 1545997028 3 IN IP4 127.0.0.1
s=trunk
c=IN IP4 127.0.0.1
t=0 0
m=audio $pg RTP/AVP 8
a=sendrecv
----------------------------------
v=0
o=- 1545997028 3 IN IP4 127.0.0.1
s=trunk
c=IN IP4 127.0.0.1
t=0 0
m=audio PORT RTP/AVP 96
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=0; useinbandfec=1
a=sendrecv
SDP
is $port_o_again, $port_o, 'the opus side keeps its port';
for my $i (0 .. 3) {
	snd($sock_g, $port_g, rtp(8, 1100 + $i, 19000 + 160 * $i, 0x1234, "\xd5" x 160), '127.0.0.1');
}
rcv($sock_o2, 0, pt_re(96, '.+'));

rtpe_req('delete', 'D: delete', { 'from-tag' => ft() });
done_testing();
