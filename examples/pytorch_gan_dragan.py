"""PyTorch-GAN implementations/dragan/dragan.py on sklearn digits upsampled to 32x32, G channels halved.
Original quirk kept: only gradient_penalty.backward() is called for D (d_loss is computed, never backpropagated).
Quickstart lines added: Doctor(...), doctor.step(...), print(doctor.report())."""
import math
import sys

import numpy as np
import torch
import torch.autograd as autograd
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

opt = parse_args(("healthy", "glr", "ddom"), default_steps=800)
torch.manual_seed(opt.seed); np.random.seed(opt.seed)
lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, img_size, channels, batch_size, width = 100, 32, 1, 64, 64
if opt.variant == "glr":
    lr_g = 0.002
if opt.variant == "ddom":
    lr_d = 0.002

def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm2d") != -1:
        torch.nn.init.normal_(m.weight.data, 1.0, 0.02)
        torch.nn.init.constant_(m.bias.data, 0.0)

class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, width * self.init_size ** 2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, stride=1, padding=1),
            nn.BatchNorm2d(width, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, stride=1, padding=1),
            nn.BatchNorm2d(width // 2, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, channels, 3, stride=1, padding=1),
            nn.Tanh(),
        )
    def forward(self, noise):
        out = self.l1(noise)
        out = out.view(out.shape[0], width, self.init_size, self.init_size)
        return self.conv_blocks(out)

class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        def discriminator_block(in_filters, out_filters, bn=True):
            block = [nn.Conv2d(in_filters, out_filters, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                block.append(nn.BatchNorm2d(out_filters, 0.8))
            return block
        self.model = nn.Sequential(
            *discriminator_block(channels, 16, bn=False),
            *discriminator_block(16, 32),
            *discriminator_block(32, 64),
            *discriminator_block(64, 128),
        )
        ds_size = img_size // 2 ** 4
        self.adv_layer = nn.Sequential(nn.Linear(128 * ds_size ** 2, 1), nn.Sigmoid())
    def forward(self, img):
        out = self.model(img)
        out = out.view(out.shape[0], -1)
        return self.adv_layer(out)

adversarial_loss = torch.nn.BCELoss()
lambda_gp = 10
generator = Generator(); discriminator = Discriminator()
generator.apply(weights_init_normal); discriminator.apply(weights_init_normal)
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
Tensor = torch.FloatTensor

def compute_gradient_penalty(D, X):
    alpha = Tensor(np.random.random(size=X.shape))
    interpolates = alpha * X + ((1 - alpha) * (X + 0.5 * X.std() * torch.rand(X.size())))
    interpolates = interpolates.requires_grad_(True)
    d_interpolates = D(interpolates)
    fake = Tensor(X.shape[0], 1).fill_(1.0)
    gradients = autograd.grad(outputs=d_interpolates, inputs=interpolates, grad_outputs=fake,
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    return lambda_gp * ((gradients.norm(2, dim=1) - 1) ** 2).mean()

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D, log_dir=opt.out)
oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))
def latent(n, gen):
    return torch.randn(n, latent_dim, generator=gen)

batches_done = 0; stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):
        valid = Tensor(imgs.shape[0], 1).fill_(1.0)
        fake = Tensor(imgs.shape[0], 1).fill_(0.0)
        real_imgs = imgs.type(Tensor)
        optimizer_G.zero_grad()
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))
        gen_imgs = generator(z)
        g_loss = adversarial_loss(discriminator(gen_imgs), valid)
        g_loss.backward(); optimizer_G.step()
        optimizer_D.zero_grad()
        real_loss = adversarial_loss(discriminator(real_imgs), valid)
        fake_loss = adversarial_loss(discriminator(gen_imgs.detach()), fake)
        d_loss = (real_loss + fake_loss) / 2
        gradient_penalty = compute_gradient_penalty(discriminator, real_imgs.data)
        gradient_penalty.backward()
        optimizer_D.step()
        if i % 10 == 0:
            print("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]" % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item()))
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs)
        batches_done = epoch * len(dataloader) + i
        if batches_done % oracle_every == 0 or batches_done == opt.steps - 1:
            oracle.sample(generator, latent, batches_done)
        if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
            print("NaN loss, stopping", file=sys.stderr); stop = True
        if stop or batches_done + 1 >= opt.steps:
            stop = True; break
    if stop:
        break
oracle.sample_last(generator, latent, batches_done)
report = doctor.report()
print(report)
print("disabled_probes:", doctor.disabled_probes)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, batches_done, {"disabled_probes": str(doctor.disabled_probes)})
